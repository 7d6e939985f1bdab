"""The scheduler's domain: which models are served where, admission, batching and routing.

No grpc here: the registry is reached through injected lookups, executors through ExecutorPort.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import partial

from mlos_common.errors import InvalidArgument, MlosError
from mlos_common.signatures import TensorHeader, validate_inputs
from mlos_common.tensors import check_bytes_layout, check_raw_size
from mlos_scheduler.admission import AdmissionBook
from mlos_scheduler.batch_policy import BatchPolicy
from mlos_scheduler.batcher import DynamicBatcher
from mlos_scheduler.dispatch import Dispatcher
from mlos_scheduler.domain import GenerateRequest, GenerationChunk, IndexEntry, InferRequest, InferResult, ModelInfo
from mlos_scheduler.errors import BadRequest, ModelNotFound, ModelNotReady, ShapeMismatch
from mlos_scheduler.executors import ExecutorPort
from mlos_scheduler.front_door import FrontDoor
from mlos_scheduler.generation import Generations, check_task
from mlos_scheduler.predict import Prediction
from mlos_scheduler.profiles import ProfileBook
from mlos_scheduler.scores import ScoreTable
from mlos_scheduler.stats import StatsBook
from mlos_scheduler.window import AdaptiveWindow

log = logging.getLogger(__name__)

Lookup = Callable[[str, int], Awaitable[ModelInfo]]      # (name, version 0 = latest); raises NotFound
Lister = Callable[[], Awaitable[list[ModelInfo]]]
# (name, version text) -> the version the registry view gives it: "" = latest, a word = an alias; 0 = unknown
Resolver = Callable[[str, str], int]


def parse_version(version: str) -> int:
    if not version:
        return 0
    try:
        value = int(version)
    except ValueError:
        raise BadRequest(f"model version must be an integer, got {version!r}") from None
    if value <= 0:
        raise BadRequest(f"model version must be positive, got {version!r}")
    return value


@dataclass
class Served:
    model: ModelInfo
    batcher: DynamicBatcher
    executors: list[ExecutorPort]


@dataclass
class Scheduler:
    lookup: Lookup
    lister: Lister
    executors: list[ExecutorPort]
    dispatcher: Dispatcher  # placement and routing over `executors`
    stats: StatsBook = field(default_factory=StatsBook)
    max_queue_size: int = 1024
    batch_slots: int = 1
    heavy_batch_s: float = 0.010
    execute_timeout_s: float = 60.0
    auto_load: bool = True
    policy: BatchPolicy = field(default_factory=BatchPolicy)
    profiles: ProfileBook = field(default_factory=ProfileBook)
    admission: AdmissionBook = field(default_factory=AdmissionBook)
    door: FrontDoor = field(default_factory=FrontDoor)  # telemetry and the threat gate (inactive by default)
    scores: ScoreTable | None = None  # the predictor's failure and threat scores (None without a predictor)
    served: dict[tuple[str, int], Served] = field(default_factory=dict)
    latest: dict[str, int] = field(default_factory=dict)  # name -> version answered for ""
    peers_ready: bool = False
    startup_ready: bool = True        # False while start-up models are still loading
    load_errors: dict[str, str] = field(default_factory=dict)  # name -> why its start-up load failed
    resolve: Resolver | None = None  # the registry view's versions and aliases (None: numbers only)


    @property
    def server_ready(self) -> bool:
        """ServerReady: the peers answer, every start-up model is loaded, and every loaded model is
        held by a usable executor (see peers.py)."""
        return self.peers_ready and self.startup_ready and all(self.dispatcher.serving(k) for k in self.served)

    def __post_init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self.generations = Generations(self.dispatcher, self.stats, self.max_queue_size)
        # The executors' compute times feed the profile replica the deadline predictions read,
        # and routing compares executors on the same estimates.
        if self.dispatcher.on_compute is None:
            self.dispatcher.on_compute = lambda m, rows, s: self.profiles.observe(m.name, m.version, rows, s)
        if self.dispatcher.on_warmup is None:
            self.dispatcher.on_warmup = lambda m, timings: self.profiles.seed_warmup(m.name, m.version, timings)
        if self.dispatcher.book.estimate is None:
            self.dispatcher.book.estimate = lambda m, rows: self.profiles.estimate(m.name, m.version, rows).mean_s

    # ---- serving set ----

    def version_of(self, name: str, version: str) -> int:
        """The version a request names (0 = the latest the registry knows of, found by lookup): a
        number as given; "" = the registry view's latest; another word = an alias in the view."""
        if self.resolve is None:
            return parse_version(version)
        if version and not version.lstrip("-").isdigit():
            found = self.resolve(name, version)
            if not found:
                raise BadRequest(
                    f"model version must be an integer or an alias of model {name!r}, got {version[:64]!r}"
                )
            return found
        return parse_version(version) or self.resolve(name, "")

    def find(self, name: str, version: str) -> Served | None:
        v = self.version_of(name, version) or self.latest.get(name, 0)
        return self.served.get((name, v)) if v else None

    async def load(
        self,
        name: str,
        version: int = 0,
        timeout_s: float | None = None,
        override: Callable[[ModelInfo], ModelInfo] | None = None,
    ) -> ModelInfo:
        """Loads a version (0 = latest) on an executor; answers for "" from then on.

        `override` adjusts the registered config (RepositoryModelLoad's `config`). A loaded
        version whose config changes gets a new queue at once; requests still queued under the
        old config fail UNAVAILABLE with a message saying it was reloaded.
        """
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            model = await self.lookup(name, version)
            if override is not None:
                model = override(model)
            key = (name, model.version)
            current = self.served.get(key)
            if current is None or current.model != model:
                placed = current.executors if current is not None else await self.dispatcher.place(model, timeout_s)
                batcher = DynamicBatcher(
                    model=model,
                    run_batch=self.dispatcher.run_batch,
                    max_queue_size=self.max_queue_size,
                    slots=self.batch_slots * len(placed),
                    heavy_slots=sum(max(self.batch_slots, e.execution_slots) for e in placed),
                    heavy_batch_s=self.heavy_batch_s,
                    on_dispatch=self._on_dispatch,
                    policy=self.policy,
                    estimate=partial(self.profiles.estimate, name, model.version),
                    window=AdaptiveWindow(self.policy.windows_us),
                    admission=self.admission,
                )
                self.served[key] = Served(model, batcher, placed)
                self.stats.watch_batcher(name, model.version, batcher)
                if current is not None:
                    await current.batcher.close(f"model {name!r} v{model.version} was reloaded with a new config")
            if model.version >= self.latest.get(name, 0):
                self.latest[name] = model.version
            return model

    async def unload(self, name: str) -> int:
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            keys = [k for k in self.served if k[0] == name]
            if not keys:
                raise ModelNotFound(f"model {name!r} is not loaded")
            for key in keys:
                await self._drop(key, self.served.pop(key), f"model {name!r} v{key[1]} was unloaded")
            self.latest.pop(name, None)
            return len(keys)

    async def retire(self, name: str, version: int, drain_poll_s: float = 0.01) -> bool:
        """Stops serving a version deleted from the registry: new requests no longer find it at
        once; requests already queued or running finish (for up to execute_timeout_s; then the
        rest fail UNAVAILABLE saying why); then its executors unload it. False if not served."""
        key = (name, version)
        async with self._locks.setdefault(name, asyncio.Lock()):
            served = self.served.pop(key, None)
            if served is None:
                return False
            if self.latest.get(name) == version:
                rest = [v for n, v in self.served if n == name]
                if rest:
                    self.latest[name] = max(rest)
                else:
                    del self.latest[name]
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.execute_timeout_s
        while not served.batcher.idle and loop.time() < give_up:
            await asyncio.sleep(drain_poll_s)
        await self._drop(key, served, f"model {name!r} v{version} was deleted from the registry")
        log.info("stopped serving %s v%d: deleted from the registry", name, version)
        return True

    async def _drop(self, key: tuple[str, int], served: Served, reason: str) -> None:
        self.stats.unwatch_batcher(*key)
        self.profiles.forget(*key)
        await served.batcher.close(reason)
        await self.dispatcher.unplace(served.model)

    def model_ready(self, name: str, version: str) -> bool:
        served = self.find(name, version)
        return self.peers_ready and served is not None and self.dispatcher.serving((name, served.model.version))

    async def describe(self, name: str, version: str) -> ModelInfo:
        served = self.find(name, version)
        if served is not None:
            return served.model
        return await self.lookup(name, self.version_of(name, version))

    async def index(self, ready_only: bool) -> list[IndexEntry]:
        entries = []
        for m in await self.lister():
            ready = (m.name, m.version) in self.served
            if ready or not ready_only:
                reason = "" if ready else self.load_errors.get(m.name, "unloaded")
                entries.append(IndexEntry(m.name, m.version, "READY" if ready else "UNAVAILABLE", reason))
        return entries

    # ---- inference ----

    async def _serving(self, name: str, version: str, deadline: float | None,
                       check: Callable[[ModelInfo], None] | None = None) -> Served:
        """The served version a request names; loaded first when auto_load allows (after
        `check` accepted the registered model)."""
        served = self.find(name, version)
        if served is not None:
            return served
        if not self.auto_load:
            raise ModelNotReady(f"model {name!r} is not loaded; load it first")
        if check is not None:
            check(await self.lookup(name, self.version_of(name, version)))
        timeout_s = None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())
        model = await self.load(name, self.version_of(name, version), timeout_s)
        return self.served[(model.name, model.version)]

    async def infer(self, request: InferRequest, served: Served | None = None) -> InferResult:
        """A tensor model's answer. `served`: the request's model, when the caller found it already."""
        start = time.perf_counter_ns()
        if served is None:
            served = await self._serving(request.model, request.version, request.deadline)
        model = served.model
        try:
            admit(model, request)
            self._resolve(served, request)
            request.queued = True
            result = await served.batcher.submit(request)
        except MlosError as exc:
            self.stats.failed(model.name, model.version, exc.code, time.perf_counter_ns() - start)
            raise
        self.stats.succeeded(model.name, model.version, request.rows, time.perf_counter_ns() - start)
        return result

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[GenerationChunk, None]:
        """A generation's chunks in order, the last with final set (rules: generation.py).
        Closing the iterator early stops the generation on its executor."""
        started_ns = time.perf_counter_ns()
        served = await self._serving(request.model, request.version, request.deadline, check_task)
        async with aclosing(self.generations.run(served.model, request, partial(self._resolve, served), started_ns)) as chunks:
            async for chunk in chunks:
                yield chunk

    def _resolve(self, served: Served, request: InferRequest | GenerateRequest) -> None:
        """The request's priority level and deadline under the model's defaults (Triton's rules)."""
        model = served.model
        levels = served.batcher.levels
        if request.priority > levels:
            raise BadRequest(
                f"parameter 'priority' is {request.priority} but model {model.name!r} has {levels} priority "
                "levels (1 = highest, 0 = the model's default)"
            )
        request.priority = self.policy.priority_of(request.priority, model.default_priority, levels)
        if not request.timeout_us and model.default_timeout_us:
            default = asyncio.get_running_loop().time() + model.default_timeout_us / 1e6
            request.deadline = default if request.deadline is None else min(request.deadline, default)
        if request.deadline is not None:
            request.deadline -= self.policy.return_margin_s  # the answer still has to reach the client

    async def predict_deadline(
        self, name: str, version: str, priority: int, timeout_us: int, rows: int
    ) -> tuple[ModelInfo, int, Prediction]:
        """What would happen to such a request sent now; queues nothing. -> (model, priority, prediction)."""
        served = self.find(name, version)
        if served is None:
            await self.lookup(name, self.version_of(name, version))  # NotFound for an unknown model
            raise ModelNotReady(f"model {name!r} is not loaded; load it first")
        if rows < 1 or (served.model.max_batch_size > 0 and rows > served.model.max_batch_size):
            raise BadRequest(f"batch_rows {rows} must be between 1 and max_batch_size {served.model.max_batch_size}")
        now = asyncio.get_running_loop().time()
        request = InferRequest(name, version, "", [], [], priority=priority, timeout_us=timeout_us, rows=rows,
                               deadline=now + timeout_us / 1e6 if timeout_us else None)
        self._resolve(served, request)
        return served.model, request.priority, served.batcher.predict(rows, request.priority, request.deadline, now)

    def _on_dispatch(self, model: ModelInfo, requests: list[InferRequest], waits: list[float]) -> None:
        self.stats.dispatched(model.name, model.version, waits, sum(r.rows for r in requests))


    async def close(self) -> None:
        for served in list(self.served.values()):
            await served.batcher.close("scheduler is shutting down")
        await self.dispatcher.close()


def admit(model: ModelInfo, request: InferRequest) -> None:
    """Checks a request against the model before it is queued: names, datatypes, shapes, sizes.

    Sizes are computed from the declared shape, so nothing of the claimed size is allocated.
    Inputs that do not fit the model's signature raise ShapeMismatch.
    """
    try:
        validate_inputs(model.name, model.inputs, (TensorHeader(t.name, t.datatype, t.shape) for t in request.inputs))
    except InvalidArgument as exc:
        raise ShapeMismatch(exc.message) from None
    for t in request.inputs:
        count = check_raw_size(t.name, t.datatype, t.shape, len(t.raw))
        if t.datatype == "BYTES":
            check_bytes_layout(t.name, t.raw, count)
    known = {o.name for o in model.outputs}
    unknown = [o for o in request.outputs if o not in known]
    if unknown:
        raise BadRequest(f"model {model.name!r} has no outputs {unknown}; it has {sorted(known)}")
    if model.max_batch_size > 0:
        rows = {t.shape[0] for t in request.inputs}
        if len(rows) != 1:
            raise ShapeMismatch(f"inputs disagree on the batch size (first dimension): {sorted(rows)}")
        request.rows = rows.pop()
        if request.rows < 1:
            raise ShapeMismatch("batch size (first dimension) must be at least 1")
        if request.rows > model.max_batch_size:
            raise ShapeMismatch(
                f"batch size {request.rows} exceeds max_batch_size {model.max_batch_size} of model {model.name!r}"
            )
    else:
        request.rows = 1
