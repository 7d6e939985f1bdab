"""kill -9 of a real registry process at random points of registrations, many times: after each
restart every listed version has its blob with the right sha256, every registration that returned
OK is still there, and no temp file or orphan blob is left. Seeded (MLOS_KILL_SEED to replay)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlos_common.errors import MlosError
from mlos_registry.client import RegistryClient

ITERATIONS = 20
FILES = 10
WEIGHTS = 750_000  # float32: ~3 MB per model file
NAMES = ("alpha", "beta", "gamma")


def _weighted_model(rng: np.random.Generator) -> onnx.ModelProto:
    """z = x + w with a random ~3 MB initializer w (so each file has its own bytes)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", WEIGHTS])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", WEIGHTS])
    w = numpy_helper.from_array(rng.standard_normal(WEIGHTS, dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["z"])], "weighted", [x], [z], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@contextmanager
def _registry_process(data_dir: Path, log_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    env = dict(os.environ, MLOS_REGISTRY_GRPC_PORT="0", MLOS_REGISTRY_METRICS_PORT="-1",
               MLOS_REGISTRY_DATA_DIR=str(data_dir))
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mlos_registry"], stdout=subprocess.PIPE, stderr=log, env=env)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line, f"registry did not start: {log_path.read_text()[-2000:]}"
            yield proc, f"127.0.0.1:{json.loads(line)['grpc_port']}"
        finally:
            proc.kill()
            proc.wait(timeout=30)


async def _register_until_killed(addr: str, files: list[tuple[Path, str]], rng: random.Random,
                                 acked: dict[tuple[str, int], str]) -> None:
    async with RegistryClient(addr) as client:
        while True:
            name = rng.choice(NAMES)
            path, digest = rng.choice(files)
            try:
                version = await client.register(name, path)
            except MlosError:
                return  # the process died under this call
            assert version.sha256 == digest
            acked[(name, version.version)] = digest


async def _check_restart(addr: str, data_dir: Path, acked: dict[tuple[str, int], str], fetched: set[tuple[str, int]],
                         scratch: Path, note: str) -> None:
    async with RegistryClient(addr) as client:
        listed = {(v.name, v.version): v.sha256 for v in await client.list()}
        for key, digest in acked.items():
            assert listed.get(key) == digest, f"{note}: {key} returned OK before the kill but is gone"
        for (name, version), digest in listed.items():
            if (name, version) not in fetched:  # FetchArtifact re-hashes on both ends
                _, got = await client.fetch_artifact(name, version, scratch / "fetched.onnx")
                assert got == digest, note
                fetched.add((name, version))
    assert list((data_dir / "blobs" / "tmp").iterdir()) == [], f"{note}: temp files left after reconcile"
    on_disk = {p.name for p in (data_dir / "blobs" / "sha256").rglob("*") if p.is_file()}
    assert on_disk == set(listed.values()), f"{note}: blobs on disk differ from the rows (orphans or missing)"


async def test_kill_9_mid_registration_never_loses_or_half_writes(tmp_path: Path) -> None:
    seed = int(os.environ.get("MLOS_KILL_SEED", random.randrange(1 << 32)))
    print(f"kill test seed {seed} (MLOS_KILL_SEED={seed} to replay)")
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    files = []
    for i in range(FILES):
        path = tmp_path / "models" / f"w{i}.onnx"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(_weighted_model(np_rng).SerializeToString())
        files.append((path, hashlib.sha256(path.read_bytes()).hexdigest()))
    data_dir = tmp_path / "data"
    acked: dict[tuple[str, int], str] = {}
    fetched: set[tuple[str, int]] = set()
    started = time.monotonic()
    for iteration in range(ITERATIONS + 1):
        note = f"seed {seed}, iteration {iteration}"
        log_path = tmp_path / f"registry{iteration}.log"
        with _registry_process(data_dir, log_path) as (proc, addr):
            await _check_restart(addr, data_dir, acked, fetched, tmp_path, note)
            if iteration == ITERATIONS:
                break
            writers = [asyncio.create_task(_register_until_killed(addr, files, random.Random(rng.random()), acked))
                       for _ in range(2)]
            await asyncio.sleep(rng.uniform(0.0, 0.6))  # a random point of the registrations in flight
            proc.kill()
            await asyncio.gather(*writers)
        assert "reconcile:" in log_path.read_text(), note
    elapsed_s = time.monotonic() - started
    print(f"{ITERATIONS} kills, {len(acked)} registrations acknowledged, {len(fetched)} versions verified, "
          f"{elapsed_s:.1f} s")
    assert len(acked) >= ITERATIONS // 2, f"seed {seed}: too few registrations completed to mean anything"
