"""The registry's throughput: registrations per second, upload and FetchArtifact MB/s vs a file copy.

Starts a real registry process (`python -m mlos_registry`, port 0, a temp data folder) and times,
from a client in this process:
- registrations/s of small ONNX models with distinct bytes (one caller, then 4 concurrent);
- a large ONNX file (`--large-mb` MB of random initializer data) three ways: RegisterModel by
  path (the registry copies, hashes, fsyncs, parses), UploadModel (client hash + stream + the
  same), FetchArtifact to a file (the registry re-hashes as it streams, the client hashes, writes,
  fsyncs); and the same weights as ONNX external data, registered as a folder (one bundle);
- against shutil.copyfile of the same file on the same disk, copyfile + fsync, and one sha256
  pass over the file (every verified path pays at least that once per end).
The page cache is warm for every reader (the file was just written): numbers compare the paths,
not the disk. Prints a table and writes JSON (default bench/results/registry.json).

    python bench/bench_registry.py                 # 200 MB, 50 small models, 3 rounds
    python bench/bench_registry.py --quick         # 4 MB, 5 models, 1 round (smoke)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def weights_model(values: np.ndarray) -> onnx.ModelProto:
    """z = x + w, w FP32 [len(values)] an initializer (its bytes make the file's size)."""
    n = len(values)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", n])
    w = numpy_helper.from_array(values.astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["z"])], "weights", [x], [z], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@contextmanager
def registry_process(data_dir: Path, max_bytes: int) -> Iterator[str]:
    env = dict(os.environ, MLOS_REGISTRY_GRPC_PORT="0", MLOS_REGISTRY_METRICS_PORT="-1",
               MLOS_REGISTRY_DATA_DIR=str(data_dir), MLOS_REGISTRY_MAX_ARTIFACT_BYTES=str(max_bytes),
               MLOS_REGISTRY_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, "-m", "mlos_registry"], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the registry did not start (see its stderr above)")
        yield f"127.0.0.1:{json.loads(line)['grpc_port']}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def median_s(rounds: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def amedian_s(rounds: int, run: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        await run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(4 * 1024 * 1024):
            hasher.update(block)
    return hasher.hexdigest()


def copy_fsync(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    with open(dst, "rb+") as handle:
        os.fsync(handle.fileno())


async def measure(addr: str, work: Path, models: int, large_bytes: int, rounds: int) -> dict:
    from mlos_registry.client import RegistryClient

    rng = np.random.default_rng(0)
    small = []
    for i in range(models + 4 * models):
        small.append(work / "small" / f"m{i}.onnx")
        small[-1].parent.mkdir(parents=True, exist_ok=True)
        small[-1].write_bytes(weights_model(rng.standard_normal(64)).SerializeToString())
    large = work / "large.onnx"
    large.write_bytes(weights_model(rng.standard_normal(large_bytes // 4)).SerializeToString())
    folder = work / "external"
    folder.mkdir()
    onnx.save_model(onnx.load(str(large)), str(folder / "model.onnx"), save_as_external_data=True,
                    location="weights.bin", size_threshold=0)
    size_mb = large.stat().st_size / 1e6
    results: dict = {"large_file_mb": round(size_mb, 1), "small_models": models, "rounds": rounds}

    async with RegistryClient(addr, timeout_s=None) as client:
        start = time.perf_counter()
        for path in small[:models]:
            await client.register("small", path)
        results["registrations_per_s_1_caller"] = round(models / (time.perf_counter() - start), 1)
        start = time.perf_counter()
        await asyncio.gather(*(client.register(f"small{i % 4}", p) for i, p in enumerate(small[models:])))
        results["registrations_per_s_4_callers"] = round(4 * models / (time.perf_counter() - start), 1)

        copy_s = median_s(rounds, lambda: shutil.copyfile(large, work / "copy.onnx"))
        copy_fsync_s = median_s(rounds, lambda: copy_fsync(large, work / "copy.onnx"))
        hash_s = median_s(rounds, lambda: sha256_file(large))
        register_s = await amedian_s(rounds, lambda: client.register("large", large))
        upload_s = await amedian_s(rounds, lambda: client.upload("large", large))
        fetch_s = await amedian_s(rounds, lambda: client.fetch_artifact("large", 0, work / "fetched.onnx"))
        bundle_s = await amedian_s(rounds, lambda: client.register("large_external", folder))
    rows = {
        "shutil.copyfile": copy_s, "copyfile + fsync": copy_fsync_s, "sha256 of the file (one read)": hash_s,
        "RegisterModel (path)": register_s,
        "UploadModel": upload_s, "FetchArtifact": fetch_s, "RegisterModel (external-data folder)": bundle_s,
    }
    results["large"] = {
        name: {"seconds": round(s, 3), "mb_per_s": round(size_mb / s, 1), "vs_copyfile": round(copy_s / s, 2)}
        for name, s in rows.items()
    }
    return results


def table(results: dict) -> str:
    lines = [
        f"registry, small models: {results['registrations_per_s_1_caller']} registrations/s (1 caller), "
        f"{results['registrations_per_s_4_callers']}/s (4 callers), {results['small_models']} models each",
        f"large file: {results['large_file_mb']} MB, median of {results['rounds']}",
        f"{'PATH':<40}{'SECONDS':>9}{'MB/s':>9}{'VS COPY':>9}",
    ]
    for name, row in results["large"].items():
        lines.append(f"{name:<40}{row['seconds']:>9.3f}{row['mb_per_s']:>9.1f}{row['vs_copyfile']:>8.0%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50, help="small models per caller count")
    parser.add_argument("--large-mb", type=int, default=200, help="size of the large model's initializer (MB)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="4 MB, 5 models, 1 round (a smoke run)")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "registry.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.large_mb, args.rounds = 5, 4, 1
    with tempfile.TemporaryDirectory(prefix="mlos-bench-registry-") as tmp:
        work = Path(tmp)
        with registry_process(work / "data", 4 * args.large_mb * 10**6 + 10**8) as addr:
            results = asyncio.run(measure(addr, work, args.models, args.large_mb * 10**6, args.rounds))
    results["machine"] = {"cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2)}
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
