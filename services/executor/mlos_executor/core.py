"""The executor's domain: which models are loaded here, and running their batches and generations.

ONNX models run on ONNX Runtime sessions; GGUF models on llama.cpp (llama_models.py): generation
models through their token scheduler (generation.py), embedding models as tensor models.

No grpc here. Artifacts come through an injected fetcher (the registry client in production),
telemetry goes to an injected sink that must never block (the predictor streamer).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlos_common.errors import InvalidArgument, MlosError
from mlos_common.signatures import TensorHeader, TensorSpec, batchable, validate_inputs
from mlos_common.tensors import datatype_of
from mlos_executor.artifacts import Fetcher, verified_artifact
from mlos_executor.budget import Footprint
from mlos_executor.errors import BadOutputName, ModelNotLoaded
from mlos_executor.eviction import Candidate, Eviction, Evictor
from mlos_executor.generation import Emit, Generation, GenerationSpec
from mlos_executor.hardware import Hardware, prepare_hardware
from mlos_executor.llama_backend import LlamaSettings
from mlos_executor.llama_models import GENERATE, EmbeddingModel, GenerationModel, is_gguf, load_gguf
from mlos_executor.memory_guard import MemoryGuard
from mlos_executor.onnx_backend import OnnxModel, SessionPlan, auto_intra_op_threads
from mlos_executor.pool import BufferPool
from mlos_executor.shared_weights import SharedWeights
from mlos_executor.threads import resolve_instances, resolve_threads
from mlos_executor.warmup import WarmupTiming, largest_batch, warm_up
from mlos_executor.work import ExecutionSample, Sink, WorkItem, WorkOutcome, batch_size, run_group

log = logging.getLogger(__name__)

__all__ = ["ExecutorCore", "ExecutionSample", "Fetcher", "LoadedModel", "Sink", "WorkItem", "WorkOutcome"]


Runnable = OnnxModel | GenerationModel | EmbeddingModel  # what a loaded model's session is


@dataclass
class LoadedModel:
    name: str
    version: int
    sha256: str
    model: Runnable
    load_ms: int
    executions: int = 0
    in_flight: int = 0
    mean_run_ns: int = 0  # moving average of one run's runtime (0 = never ran)
    inline_runs: int = 0  # runs done on the event loop instead of a worker thread
    threads: int = 0  # intra-op threads of its session
    path: Path | None = None  # the verified artifact, to rebuild the session
    rethreading: bool = False
    wide: OnnxModel | None = None  # a heavy model's second session, with every usable CPU
    wide_threads: int = 0
    wide_runs: int = 0  # runs that used it (nothing else was running)
    batched: bool = True  # the first dimension is the batch (rows reported to telemetry); else 1 row
    max_rows: int = 0  # batches with more rows run in pieces of this many (0 = whole)
    instances: int = 1  # sessions its runs are spread over
    warmup: list[WarmupTiming] = field(default_factory=list)  # timed at load (see warmup.py)
    memory: Footprint | None = None  # measured at load (see memory_guard.py)
    last_used_ns: int = field(default_factory=time.monotonic_ns)  # its last request (LRU eviction)

    @property
    def task(self) -> str:
        return getattr(self.model, "task", "infer")

    @property
    def busy(self) -> int:
        """Work in flight: batches running or queued for a worker thread, and open generations."""
        model = self.model
        return self.in_flight + (len(model.scheduler.open) if isinstance(model, GenerationModel) else 0)


@dataclass
class ExecutorCore:
    executor_id: str
    cache_dir: Path
    fetch: Fetcher
    device: str = "auto"
    intra_op_threads: int = 0
    execution_slots: int = 2
    inline_run_ns: int = 300_000  # work expected to run shorter than this runs on the event loop
    heavy_run_ns: int = 20_000_000  # a model whose runs average longer gets a session with every CPU
    sink: Sink | None = None
    warmup_runs: int = 3  # timed warm-up runs per batch size at load; 0 = no warm-up
    warmup_max_s: float = 2.0  # warm-up time per model, at most (roughly: a run in progress finishes)
    generation_preemption: bool = True  # generations take turns by urgency (False: first come, first served)
    memory: MemoryGuard = field(default_factory=MemoryGuard)  # budget, footprint prediction, measurement
    pool: BufferPool | None = None  # output buffers reused per (shape, dtype); None = off (pool.py)
    shared_weights: SharedWeights | None = None  # identical large initializers held once; None = off
    models: dict[tuple[str, int], LoadedModel] = field(default_factory=dict)
    on_evict: Callable[[Eviction], None] | None = None  # metrics hook (logged and counted in any case)
    hardware: Hardware | None = None  # runtime mode, GPUs, NUMA placement; None = detected, not pinned

    def __post_init__(self) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(self.execution_slots, thread_name_prefix="mlos-exec")
        self._auto_threads = self.intra_op_threads <= 0
        if self._auto_threads:
            self.intra_op_threads = auto_intra_op_threads(self.execution_slots)
        self.heavy_threads = auto_intra_op_threads(1) if self._auto_threads else self.intra_op_threads
        self._background: set[asyncio.Task] = set()
        self._load_locks: dict[tuple[str, int], asyncio.Lock] = {}
        self.hardware = self.hardware or prepare_hardware(self.device, False, None, pin=False)
        self.runtime_mode = self.hardware.runtime.mode
        self.evictor = Evictor(self._candidates, lambda key: self.unload(*key), self.on_evict)

    # ---- loading ----

    async def load(self, name: str, version: int, sha256: str, max_batch_size: int | None = None,
                   task: str = "", llama: LlamaSettings | None = None, evict: bool = True, instances: int = 0,
                   threads: int = 0, warmup_plan: tuple[int, ...] = ()) -> LoadedModel:
        """`max_batch_size` from the model's serving config (0 = no batch dimension; None = not
        given: the signature decides, and warm-up runs at batch 1 only); larger batches run in
        pieces of that size. An ONNX model gets `instances` sessions (0 = 1) of `threads` intra-op
        threads each (0 = the executor's rule, threads.py); InvalidArgument when out of range. A GGUF file loads on
        llama.cpp for `task` ("generate" unless "embed") with `llama` settings (see llama_models.py).
        Raises MemoryBudgetExceeded when the predicted footprint does not fit (see memory_guard.py)
        even after evicting idle models (eviction.py); `evict=False` (prefetch) uses free room only.
        `warmup_plan`: the batch sizes warm-up runs (empty = 1 and max_batch_size; see warmup.py)."""
        key = (name, version)
        lock = self._load_locks.setdefault(key, asyncio.Lock())
        async with lock:
            current = self.models.get(key)
            if current is not None and (not sha256 or current.sha256 == sha256):
                current.batched = current.batched if max_batch_size is None else max_batch_size > 0
                current.max_rows = current.max_rows if max_batch_size is None else max(0, max_batch_size)
                return current
            start = time.perf_counter()
            path = await verified_artifact(self.cache_dir, self.fetch, name, version, sha256)
            if await asyncio.to_thread(is_gguf, path):
                return await self._load_gguf(key, sha256, path, task or GENERATE, llama or LlamaSettings(), start,
                                             evict)
            plan = self._plan(resolve_threads(threads, self.intra_op_threads), resolve_instances(instances))
            if max_batch_size:  # a load-time max_batch_size below the plan's sizes clips the plan
                warmup_plan = tuple(s for s in warmup_plan if 0 < s <= max_batch_size)
            facts = await self.memory.admit(key, path, largest_batch(self.warmup_runs, max_batch_size, warmup_plan),
                                            self.evictor.make_room if evict else None)
            measure = self.memory.start()
            try:
                model = await asyncio.to_thread(OnnxModel.load, path, plan=plan)
                loaded = LoadedModel(
                    name, version, sha256 or path.stem, model, int((time.perf_counter() - start) * 1000),
                    threads=plan.intra_op_threads, path=path,
                    batched=batchable(model) if max_batch_size is None else max_batch_size > 0,
                    max_rows=max(0, max_batch_size or 0), instances=plan.instances,
                )
                loaded.warmup, skipped = await asyncio.to_thread(
                    warm_up, model, loaded.batched, max_batch_size or 1, self.warmup_runs, self.warmup_max_s,
                    measure.mark, warmup_plan,
                )
            except BaseException:
                self.memory.abandon(key, measure)
                raise
            loaded.memory = self.memory.finish(key, facts, measure)
            if skipped and self.warmup_runs > 0:
                log.info("warm-up of %s v%d skipped: %s", name, version, skipped)
            self.models[key] = loaded
            self.evictor.trim(key, self.memory.budget.over_bytes())
            log.info("loaded %s v%d (%s) in %d ms on %s, %d instance(s) of %d intra-op threads", name, version,
                     loaded.sha256[:12], loaded.load_ms, ",".join(model.providers), plan.instances,
                     plan.intra_op_threads)
            return loaded

    def _plan(self, threads: int, instances: int = 1) -> SessionPlan:
        return SessionPlan(self.device, threads, instances, self.pool, self.shared_weights)

    async def _load_gguf(self, key: tuple[str, int], sha256: str, path: Path, task: str, settings: LlamaSettings,
                         start: float, evict: bool) -> LoadedModel:
        facts = await self.memory.admit(key, path, 1, self.evictor.make_room if evict else None)
        measure = self.memory.start()
        try:
            model = await load_gguf(path, task, settings, self.generation_preemption)
        except BaseException:
            self.memory.abandon(key, measure)
            raise
        loaded = LoadedModel(key[0], key[1], sha256 or path.stem, model, int((time.perf_counter() - start) * 1000),
                             threads=settings.resolved_threads(), path=path, batched=False)
        loaded.memory = self.memory.finish(key, facts, measure)
        self.models[key] = loaded
        self.evictor.trim(key, self.memory.budget.over_bytes())
        log.info("loaded %s v%d (%s, GGUF, %s) in %d ms on %s", key[0], key[1], loaded.sha256[:12], task,
                 loaded.load_ms, ",".join(model.providers))
        return loaded

    def unload(self, name: str, version: int) -> bool:
        # Batches already running keep their reference to the session and finish; a GGUF model's
        # open generations end ("cancelled") and its contexts are freed.
        self.memory.release((name, version))
        loaded = self.models.pop((name, version), None)
        if loaded is not None and isinstance(loaded.model, GenerationModel | EmbeddingModel):
            self._in_background(loaded.model.close())
        return loaded is not None

    def _candidates(self, loading: tuple[str, int]) -> list[Candidate]:
        """Every loaded model but `loading`, as eviction sees it."""
        return [Candidate(key, m.last_used_ns, m.busy, m.memory.bytes if m.memory else 0)
                for key, m in self.models.items() if key != loading]

    def generate(self, name: str, version: int, spec: GenerationSpec, emit: Emit) -> Generation:
        """Queues a generation on a loaded generation model; its chunks (or its error) go to `emit`."""
        loaded = self.get(name, version)
        loaded.last_used_ns = time.monotonic_ns()
        model = loaded.model
        if not isinstance(model, GenerationModel):
            raise InvalidArgument(
                f"model {name!r} is not a text generation model (task {loaded.task!r}): send its input tensors"
            )
        return model.scheduler.submit(spec, emit)

    def cancel(self, generation: Generation) -> None:
        for loaded in self.models.values():
            if isinstance(loaded.model, GenerationModel) and generation in loaded.model.scheduler.open:
                loaded.model.scheduler.cancel(generation)
                return
        generation.cancelled = True  # its model went away: nothing runs it any more

    def get(self, name: str, version: int) -> LoadedModel:
        loaded = self.models.get((name, version))
        if loaded is None:
            raise ModelNotLoaded(name, version, self.executor_id)
        return loaded

    # ---- execution ----

    async def execute(
        self, name: str, version: int, feeds: dict[str, np.ndarray], output_names: list[str]
    ) -> tuple[list[tuple[TensorSpec, np.ndarray]], int]:
        """Runs one batch; raises its typed error."""
        (outcome,) = await self.execute_group(name, version, [WorkItem(feeds, output_names)])
        if outcome.error is not None:
            raise outcome.error
        return outcome.outputs, outcome.compute_ns

    async def execute_group(self, name: str, version: int, items: list[WorkItem]) -> list[WorkOutcome]:
        """Runs several pieces of work of one model, one after another, in one worker-thread hop.

        One outcome per item, in order; an item that fails (bad input, runtime error, deadline
        passed before it ran) fails alone. Raises only when the model is not loaded.
        """
        loaded = self.get(name, version)
        loaded.last_used_ns = time.monotonic_ns()
        model = loaded.model
        if isinstance(model, GenerationModel):  # text comes as Work.generate, never as a batch
            return [WorkOutcome(error=model.refusal()) for _ in items]
        outcomes: list[WorkOutcome] = []
        runnable: list[tuple[WorkItem, list[TensorSpec], WorkOutcome]] = []
        for item in items:
            outcome = WorkOutcome()
            outcomes.append(outcome)
            try:
                feeds = item.feeds
                validate_inputs(
                    name, model.inputs, (TensorHeader(k, datatype_of(v), v.shape) for k, v in feeds.items())
                )
                runnable.append((item, self._select_outputs(model, item.output_names), outcome))
            except MlosError as exc:
                outcome.error = exc
        if not runnable:
            return outcomes
        loaded.in_flight += len(runnable)
        try:
            loop = asyncio.get_running_loop()
            expected_ns = loaded.mean_run_ns * len(runnable)
            if loaded.mean_run_ns and expected_ns < self.inline_run_ns:
                # A thread hand-off costs 0.1-0.2 ms, more than such runs: do them here.
                run_group(model, runnable, loaded.max_rows)
                loaded.inline_runs += len(runnable)
            elif loaded.wide is not None and self.in_flight == len(runnable):
                # Nothing else runs here: this heavy model's session with every CPU takes them all.
                loaded.wide_runs += len(runnable)
                await loop.run_in_executor(self._pool, run_group, loaded.wide, runnable, loaded.max_rows)
            else:
                await loop.run_in_executor(self._pool, run_group, model, runnable, loaded.max_rows)
            first = loaded.executions == 0  # its cold run (lazy allocations) would skew the mean
            for _, _, outcome in runnable[1:] if first else runnable:
                ns = outcome.compute_ns
                loaded.mean_run_ns = (loaded.mean_run_ns * 7 + ns) // 8 if loaded.mean_run_ns else ns
            if (loaded.mean_run_ns > self.heavy_run_ns and self.heavy_threads > loaded.threads and not loaded.rethreading
                    and isinstance(model, OnnxModel)):
                self._rethread(loaded)
        finally:
            loaded.in_flight -= len(runnable)
            loaded.executions += len(runnable)
        if self.sink is not None:
            for item, _, outcome in runnable:
                rows = batch_size(item.feeds) if loaded.batched else 1
                self.sink(ExecutionSample(name, version, rows, outcome.compute_ns, outcome.error is None))
        return outcomes

    def _rethread(self, loaded: LoadedModel) -> None:
        """Gives a heavy model a second session with every usable CPU, built in the background.

        One thread per run suits concurrent runs (they fill the cores, and split runs cost ~15 %
        more CPU here); but a run of tens of milliseconds that runs alone would leave the other
        cores idle. So a heavy model keeps both sessions (its weights twice in memory) and a run
        takes the wide one only when nothing else runs on this executor.
        """
        loaded.rethreading = True

        path = loaded.path
        assert path is not None, "a heavy model's session is rebuilt from its verified artifact"

        async def rebuild() -> None:
            try:
                loaded.wide = await asyncio.to_thread(OnnxModel.load, path, plan=self._plan(self.heavy_threads))
                loaded.wide_threads = self.heavy_threads
            except MlosError as exc:
                log.warning("could not give %s v%d more threads: %s", loaded.name, loaded.version, exc.message)
                return
            log.info("%s v%d runs %.1f ms on average: it runs alone on %d intra-op threads from now on",
                     loaded.name, loaded.version, loaded.mean_run_ns / 1e6, self.heavy_threads)

        self._in_background(rebuild())

    def _in_background(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    def _select_outputs(model: Runnable, names: list[str]) -> list[TensorSpec]:
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
        for task in list(self._background):
            task.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
