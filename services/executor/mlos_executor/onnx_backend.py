"""ONNX Runtime backend: one InferenceSession per loaded model version.

Sessions are always created from a file path (never from bytes), so ONNX Runtime applies its
external-data path checks. CUDA is used when the device setting allows it and the installed
onnxruntime has the provider; otherwise CPU.

String tensors: onnxruntime's Python binding takes and returns `str` (UTF-8 in the runtime's
std::string); an element that is `bytes` would be passed as its printed form (b"abc" -> "b'abc'").
So BYTES inputs are decoded as UTF-8 here, strictly: bytes that are not UTF-8 cannot cross the
binding unchanged, and are refused with INVALID_ARGUMENT naming the input and element (send
binary data as a UINT8 tensor). Outputs come back as `str` and are encoded as UTF-8 again, so
text round-trips byte for byte (embedded NULs included).

Runtime failures keep onnxruntime's own message (first line, without source paths):
INVALID_ARGUMENT when the runtime blames the input (its INVALID_ARGUMENT, or a node that failed
on this data: "Non-zero status code returned while running ... node"), INTERNAL otherwise.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mlos_common.errors import Internal, InvalidArgument, MlosError
from mlos_common.signatures import TensorSpec
from mlos_common.tensors import ONNX_TYPES
from mlos_executor.errors import ModelLoadFailed
from mlos_executor.pool import BufferPool, PooledRunner
from mlos_executor.shared_weights import SharedInitializer, SharedWeights, attach

log = logging.getLogger(__name__)


def auto_intra_op_threads(execution_slots: int, cpus: int | None = None) -> int:
    """Threads inside one run when the setting is 0: the usable CPUs shared by the runs that may
    execute at once, at least one.

    ONNX Runtime's default (one thread per physical core) assumes the runtime owns the host. An
    executor shares it with the front door and with its own concurrent runs: on 2 cores the
    default two-thread pool wakes its helper 40-60 times per small-model run and doubled the
    classifier's run time (2.1 ms vs 0.85 ms with one thread). Concurrent runs, not threads
    inside a run, then keep the cores busy.
    """
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus // max(1, execution_slots))


def choose_providers(device: str) -> list[str]:
    available = ort.get_available_providers()
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise ModelLoadFailed("device 'cuda' requested but onnxruntime has no CUDAExecutionProvider")
    return ["CPUExecutionProvider"]


def _specs(args: list) -> tuple[TensorSpec, ...]:
    specs = []
    for a in args:
        dtype = ONNX_TYPES.get(a.type)
        if dtype is None:  # sequence/map outputs cannot travel as v2 tensors
            continue
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in a.shape)
        specs.append(TensorSpec(a.name, dtype, shape))
    return tuple(specs)


@dataclass(frozen=True)
class SessionPlan:
    """How a model's sessions are built: `instances` sessions (requests spread over the least
    busy), `intra_op_threads` each; outputs in `pool` buffers and large initializers from
    `shared` when those are on (see pool.py, shared_weights.py)."""

    device: str = "auto"
    intra_op_threads: int = 1
    instances: int = 1
    pool: BufferPool | None = None
    shared: SharedWeights | None = None


@dataclass
class OnnxModel:
    session: ort.InferenceSession
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    providers: tuple[str, ...]
    sessions: list[ort.InferenceSession] = field(default_factory=list)  # every instance, `session` first
    shared: list[SharedInitializer] = field(default_factory=list)  # kept alive as long as the sessions
    runner: PooledRunner | None = None
    _busy: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, path: Path, *, device: str = "auto", intra_op_threads: int = 1,
             plan: SessionPlan | None = None) -> OnnxModel:
        plan = plan or SessionPlan(device, intra_op_threads)
        providers = choose_providers(plan.device)
        sessions: list[ort.InferenceSession] = []
        try:
            named = plan.shared.collect(path) if plan.shared is not None else []
            for _ in range(max(1, plan.instances)):
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = plan.intra_op_threads
                opts.inter_op_num_threads = 1
                # Spinning workers burn the cores the gRPC servers need on small machines.
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                attach(opts, named)
                sessions.append(ort.InferenceSession(str(path), sess_options=opts, providers=providers))
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelLoadFailed(f"onnxruntime could not load the model: {runtime_message(exc)}") from exc
        session = sessions[0]
        return cls(
            session=session,
            inputs=_specs(session.get_inputs()),
            outputs=_specs(session.get_outputs()),
            providers=tuple(session.get_providers()),
            sessions=sessions,
            shared=[s for _, s in named],
            runner=PooledRunner(plan.pool) if plan.pool is not None else None,
            _busy=[0] * len(sessions),
        )

    def run(self, feeds: dict[str, np.ndarray], output_names: list[str]) -> list[np.ndarray]:
        """Runs on the least busy instance; raises InvalidArgument or Internal carrying the
        runtime's message."""
        feeds = {name: _as_text(name, a) if a.dtype == object else a for name, a in feeds.items()}
        index = self._acquire()
        session = self.sessions[index] if self.sessions else self.session
        try:
            if self.runner is not None:
                return self.runner.run(session, feeds, output_names)
            return session.run(output_names, feeds)
        except UnicodeDecodeError as exc:
            raise Internal(f"the model produced a string output that is not UTF-8 text ({exc.reason})") from None
        except Exception as exc:  # onnxruntime raises several private exception types
            raise runtime_error(exc) from None
        finally:
            self._release(index)

    def _acquire(self) -> int:
        if len(self._busy) <= 1:
            return 0
        with self._lock:
            index = min(range(len(self._busy)), key=self._busy.__getitem__)
            self._busy[index] += 1
            return index

    def _release(self, index: int) -> None:
        if len(self._busy) > 1:
            with self._lock:
                self._busy[index] -= 1


def _as_text(name: str, array: np.ndarray) -> np.ndarray:
    """An object array of bytes (BYTES) as an object array of str, decoded as strict UTF-8."""
    flat = array.reshape(-1)
    out = np.empty(flat.shape[0], dtype=object)
    for i, item in enumerate(flat):
        if isinstance(item, str):
            out[i] = item
            continue
        try:
            out[i] = bytes(item).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgument(
                f"input {name!r}: BYTES element {i} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                "onnxruntime string tensors hold UTF-8 only, send binary data as UINT8"
            ) from None
    return out.reshape(array.shape)


_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*(\w+)\s*:\s*")
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.+\-]+){2,}(?::\d+)?")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_INPUT_FAULT = "Non-zero status code returned while running"


def runtime_error(exc: Exception) -> MlosError:
    """onnxruntime's exception as a typed error whose message is the runtime's own first line."""
    kind = type(exc).__name__
    text = runtime_message(exc)
    match = _ORT_PREFIX.match(text)
    if match:
        kind, text = match.group(1), text[match.end():]
    message = f"onnxruntime {kind}: {text}"
    if kind in ("INVALID_ARGUMENT", "InvalidArgument") or _INPUT_FAULT in text:
        return InvalidArgument(message)
    return Internal(message)


def runtime_message(exc: Exception) -> str:
    """The first line of a runtime error, without colour codes, source file paths or a stack
    trace, cut to 400 characters."""
    text = _ANSI.sub("", str(exc)).strip().splitlines()
    if not text:
        return type(exc).__name__
    return _PATH.sub("<path>", text[0])[:400]
