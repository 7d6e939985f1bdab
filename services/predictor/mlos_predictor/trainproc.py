"""Training in a child process, so the predictor's event loop keeps serving while a kind trains.

`TrainingPool.train(job, timeout_s)` runs `run_job(job)` (trainer.train: fit, export, check,
judge) in a concurrent.futures ProcessPoolExecutor of one worker, started with "spawn" (the
parent runs grpc.aio, which does not survive fork) on the first training and kept for the next.
Only picklable data crosses: a `TrainJob` in (the kind's name, its labelled rows as numpy arrays,
the served model as ONNX bytes or None for the kind's prior, min rows, seed, time stamp), a
`TrainReply` out (the candidate's ONNX bytes, its card, the reason and the scores); the parent
builds the OnnxModel it serves. The worker rebuilds the served model from kinds.SPECS.

Limits: the worker imports the training libraries first, then caps its address space
(RLIMIT_AS) at what it maps then plus `memory_limit_mb` (0 = no cap), and lowers its CPU priority
(nice +10: training is background work beside the data plane). A training that takes longer than
`timeout_s` (counted from submission, so a fresh worker's start-up counts) or that is cancelled
gets its process killed; a process that dies (killed, out of memory in native code) breaks the
pool. Either way `train` raises TrainingFailed with a reason a person can act on and the next
training starts a fresh worker; the parent never dies with its child. `close()` stops the
worker (killing it mid-training) and refuses later trainings.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import resource
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.process import BaseProcess

from mlos_predictor import trainer
from mlos_predictor.kinds import SPECS
from mlos_predictor.models import ModelCard, OnnxModel, PriorModel, ServedModel
from mlos_predictor.rowstore import Rows

log = logging.getLogger(__name__)

WORKER_NICE = 10


class TrainingFailed(Exception):
    """A training that gave no result (timed out, its process died, or it raised): says why."""


@dataclass(frozen=True, slots=True)
class TrainJob:
    kind: str
    rows: Rows  # the kind's labelled window, sorted by time
    served_onnx: bytes | None  # the served model's ONNX graph; None: the kind's prior answers
    min_rows: int
    seed: int
    now_ms: int  # the card's trained_unix_ms


@dataclass(frozen=True, slots=True)
class TrainReply:
    """trainer.TrainResult without what cannot cross a process boundary (sessions, estimators)."""

    kind: str
    replaced: bool
    reason: str
    candidate_score: float
    onnx_bytes: bytes | None  # the candidate's graph, when one was fitted and exported
    card: ModelCard | None  # set when a candidate was judged
    pid: int  # the process that trained


def served_graph(model: ServedModel) -> bytes | None:
    """What a TrainJob carries for the served `model`: its ONNX bytes, or None for a prior."""
    if isinstance(model, OnnxModel):
        return model.onnx_bytes
    if isinstance(model, PriorModel):
        return None
    raise TypeError(f"a {type(model).__name__} cannot be sent to the training process (only priors and ONNX models)")


def run_job(job: TrainJob) -> TrainReply:
    """In the worker: rebuilds the served model and trains (trainer.train)."""
    spec = SPECS[job.kind]
    served = PriorModel(spec) if job.served_onnx is None else OnnxModel(spec, job.served_onnx)
    r = trainer.train(spec, job.rows, served, min_rows=job.min_rows, seed=job.seed, now_ms=job.now_ms)
    onnx_bytes = None if r.model is None else r.model.onnx_bytes
    return TrainReply(job.kind, r.replaced, r.reason, r.candidate_score, onnx_bytes, r.card, os.getpid())


def _start_worker(memory_limit_mb: int) -> None:
    """The worker's initializer: imports, then the address-space cap and the lower priority."""
    import onnxruntime  # noqa: F401  (mapped before the cap is measured: the cap is what training adds)
    import skl2onnx  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    if memory_limit_mb > 0:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = _mapped_bytes() + (memory_limit_mb << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    os.nice(WORKER_NICE)


def _mapped_bytes() -> int:
    """This process's virtual size (/proc/self/statm; 0 where there is none)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class TrainingPool:
    """One training worker process, started on demand, replaced after a failure (module docstring)."""

    def __init__(self, memory_limit_mb: int = 2048) -> None:
        self.memory_limit_mb = memory_limit_mb
        self._pool: ProcessPoolExecutor | None = None
        self._busy = 0
        self._closed = False

    def worker_pids(self) -> list[int]:
        """The worker's process id while one runs (empty before the first training or after a failure)."""
        return [] if self._pool is None else [p.pid for p in _workers(self._pool) if p.pid is not None]

    def _ensure(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker, initargs=(self.memory_limit_mb,),
            )  # fmt: skip
        return self._pool

    async def train(self, job: TrainJob, timeout_s: float) -> TrainReply:
        """`job` trained in the worker; raises TrainingFailed (timeout, a dead process, an error)."""
        if self._closed:
            raise TrainingFailed("the training process is closed: the predictor is stopping")
        pool = self._ensure()
        self._busy += 1
        workers: list[BaseProcess] = []  # kept: the pool forgets them once it is shut down
        try:
            running = pool.submit(run_job, job)  # on the loop (no race with _discard): a new worker takes ~1-6 ms
            workers = _workers(pool)
            return await asyncio.wait_for(asyncio.wrap_future(running), timeout_s)
        except TimeoutError:
            self._discard(pool)
            raise TrainingFailed(
                f"it took longer than {timeout_s:g} s (MLOS_PREDICTOR_TRAIN_TIMEOUT_S); its process was "
                "stopped and the next training starts a fresh one"
            ) from None
        except BrokenProcessPool:
            workers = workers or _workers(pool)
            self._discard(pool)
            if self._closed:
                raise TrainingFailed("the predictor stopped while it trained; its process was stopped") from None
            ending = await _how_it_ended(workers)
            raise TrainingFailed(
                f"the training process died ({ending}; it may map {self.memory_limit_mb} MB beyond its libraries, "
                "MLOS_PREDICTOR_TRAIN_MEMORY_LIMIT_MB); the next training starts a fresh one"
            ) from None
        except MemoryError:
            raise TrainingFailed(
                f"out of memory in the training process (it may map {self.memory_limit_mb} MB beyond its libraries, "
                "MLOS_PREDICTOR_TRAIN_MEMORY_LIMIT_MB)"
            ) from None
        except asyncio.CancelledError:
            self._discard(pool)  # nobody waits for the result: stop the work
            raise
        except Exception as exc:  # a bug or a library's refusal: the service answers on
            log.error("training %s raised in the training process", job.kind, exc_info=exc)
            raise TrainingFailed(f"{type(exc).__name__}: {exc}") from None
        finally:
            self._busy -= 1

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        """Kills `pool`'s worker and lets it go (its manager thread reaps the process); the next
        training starts a fresh pool."""
        if self._pool is pool:
            self._pool = None
        _kill_worker(pool)
        pool.shutdown(wait=False, cancel_futures=True)

    async def close(self) -> None:
        """Stops the worker (killed if it is training) and waits until it is gone; no training
        starts after."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if self._busy:
            _kill_worker(pool)
        await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


def _workers(pool: ProcessPoolExecutor) -> list[BaseProcess]:
    """The pool's worker processes (Python 3.11 has no public handle on them; none after shutdown)."""
    return list((pool._processes or {}).values())


def _kill_worker(pool: ProcessPoolExecutor) -> None:
    for process in _workers(pool):  # Python 3.11 has no terminate_workers()
        process.kill()


async def _how_it_ended(workers: list[BaseProcess]) -> str:
    """The exit status of a dead worker, in words (waits up to 5 s for it to be reaped)."""

    def reaped() -> None:
        for process in workers:
            process.join(5.0)

    await asyncio.to_thread(reaped)
    codes = [p.exitcode for p in workers if p.exitcode is not None]
    if not codes:
        return "its exit status is unknown"
    if codes[0] < 0:
        return f"killed by signal {-codes[0]} ({signal.Signals(-codes[0]).name})"
    return f"exit code {codes[0]}"
