"""The executor's domain: which models are loaded here, and running their batches.

No grpc here. Artifacts come through an injected fetcher (the registry client in production),
telemetry goes to an injected sink that must never block (the predictor streamer).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

import numpy as np

from mlos_common.signatures import TensorHeader, TensorSpec, validate_inputs
from mlos_common.tensors import datatype_of
from mlos_executor.errors import BadOutputName, ChecksumMismatch, ModelNotLoaded
from mlos_executor.onnx_backend import OnnxModel
from mlos_executor.runtime_mode import detect_runtime_mode

log = logging.getLogger(__name__)

# (name, version, destination folder) -> (path of the verified file, its sha256)
Fetcher = Callable[[str, int, Path], Awaitable[tuple[Path, str]]]


@dataclass(frozen=True, slots=True)
class ExecutionSample:
    model_name: str
    model_version: int
    batch_size: int
    compute_ns: int
    ok: bool


Sink = Callable[[ExecutionSample], None]


@dataclass
class LoadedModel:
    name: str
    version: int
    sha256: str
    model: OnnxModel
    load_ms: int
    executions: int = 0
    in_flight: int = 0


@dataclass
class ExecutorCore:
    executor_id: str
    cache_dir: Path
    fetch: Fetcher
    device: str = "auto"
    intra_op_threads: int = 0
    execution_slots: int = 2
    sink: Sink | None = None
    models: dict[tuple[str, int], LoadedModel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(self.execution_slots, thread_name_prefix="mlos-exec")
        self._load_locks: dict[tuple[str, int], asyncio.Lock] = {}
        self.runtime_mode = detect_runtime_mode()

    # ---- loading ----

    async def load(self, name: str, version: int, sha256: str) -> LoadedModel:
        key = (name, version)
        lock = self._load_locks.setdefault(key, asyncio.Lock())
        async with lock:
            current = self.models.get(key)
            if current is not None and (not sha256 or current.sha256 == sha256):
                return current
            start = time.perf_counter()
            path = await self._artifact(name, version, sha256)
            model = await asyncio.to_thread(
                OnnxModel.load, path, device=self.device, intra_op_threads=self.intra_op_threads
            )
            loaded = LoadedModel(
                name, version, sha256 or path.stem, model, int((time.perf_counter() - start) * 1000)
            )
            self.models[key] = loaded
            log.info("loaded %s v%d (%s) in %d ms on %s", name, version, loaded.sha256[:12],
                     loaded.load_ms, ",".join(model.providers))
            return loaded

    async def _artifact(self, name: str, version: int, sha256: str) -> Path:
        """A verified, content-addressed local copy; fetched from the registry when missing."""
        if sha256:
            cached = self.cache_dir / f"{sha256}.onnx"
            if cached.exists():
                if await asyncio.to_thread(_sha256_file, cached) == sha256:
                    return cached
                log.warning("cached artifact %s is corrupt; fetching again", sha256[:12])
                cached.unlink()
        path, digest = await self.fetch(name, version, self.cache_dir)
        if sha256 and digest != sha256:
            path.unlink(missing_ok=True)
            raise ChecksumMismatch(
                f"model {name!r} v{version}: artifact digest {digest[:12]}… differs from the "
                f"registered {sha256[:12]}…"
            )
        final = self.cache_dir / f"{digest}.onnx"
        if path != final:
            os.replace(path, final)
        return final

    def unload(self, name: str, version: int) -> bool:
        # Batches already running keep their reference to the session and finish.
        return self.models.pop((name, version), None) is not None

    def get(self, name: str, version: int) -> LoadedModel:
        loaded = self.models.get((name, version))
        if loaded is None:
            raise ModelNotLoaded(f"model {name!r} v{version} is not loaded on {self.executor_id}")
        return loaded

    # ---- execution ----

    async def execute(
        self, name: str, version: int, feeds: dict[str, np.ndarray], output_names: list[str]
    ) -> tuple[list[tuple[TensorSpec, np.ndarray]], int]:
        loaded = self.get(name, version)
        model = loaded.model
        validate_inputs(name, model.inputs, (TensorHeader(k, datatype_of(v), v.shape) for k, v in feeds.items()))
        outputs = self._select_outputs(model, output_names)
        batch = _batch_size(feeds)
        names = [o.name for o in outputs]
        loaded.in_flight += 1
        run_ns = 0
        ok = False
        try:
            # Timed inside the worker: compute_ns is the runtime's time, not the thread hand-off.
            loop = asyncio.get_running_loop()
            arrays, run_ns = await loop.run_in_executor(self._pool, _timed_run, model, feeds, names)
            ok = True
        finally:
            loaded.in_flight -= 1
            loaded.executions += 1
            if self.sink is not None:
                self.sink(ExecutionSample(name, version, batch, run_ns, ok))
        return list(zip(outputs, arrays)), run_ns

    @staticmethod
    def _select_outputs(model: OnnxModel, names: list[str]) -> list[TensorSpec]:
        if not names:
            return list(model.outputs)
        by_name = {o.name: o for o in model.outputs}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise BadOutputName(f"unknown outputs {missing}; the model has {sorted(by_name)}")
        return [by_name[n] for n in names]

    @property
    def in_flight(self) -> int:
        return sum(m.in_flight for m in self.models.values())

    async def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _timed_run(model: OnnxModel, feeds: dict[str, np.ndarray], names: list[str]) -> tuple[list[np.ndarray], int]:
    start = time.perf_counter_ns()
    arrays = model.run(feeds, names)
    return arrays, time.perf_counter_ns() - start


def _batch_size(feeds: dict[str, np.ndarray]) -> int:
    for array in feeds.values():
        return int(array.shape[0]) if array.ndim else 1
    return 0


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
