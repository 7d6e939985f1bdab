"""The in-process floors: each format's own runtime in this process, driven by C Python threads.

- ``floor`` (ONNX): one ``onnxruntime.InferenceSession`` (default options, CPU provider), which is
  thread-safe: the threads call ``run`` at once.
- ``llama-inproc`` (GGUF embedding models): one ``llama_cpp.Llama(embedding=True)`` with the
  settings MLOS's executor gives the same file by default (n_ctx = min(trained, the registry's
  limit), llama.cpp threads = the usable CPUs less one, the file's pooling), its ``embed`` calls
  behind one lock: a llama.cpp context is not thread-safe (two decodes at once abort the process),
  and the executor serialises its calls the same way.

Which servers can serve which format is ``SERVES``; a (server, model) pair outside it is skipped
with the reason in ``SKIP_REASONS``, written into the JSON.
"""

from __future__ import annotations

import argparse
import os
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np
from loadgen import floor_outputs, open_floor_session, run_threads

from peers.models import PeerModel
from peers.procstat import cpu_s

SERVES = {"floor": {"onnx"}, "llama-inproc": {"gguf"}, "mlos": {"onnx", "gguf"}, "mlos-2w": {"onnx", "gguf"},
          "mlserver-inproc": {"onnx"}, "mlserver": {"onnx"}}  # fmt: skip
SKIP_REASONS = {
    ("floor", "gguf"): "floor is ONNX Runtime in process; a GGUF model's in-process floor is llama-inproc",
    ("llama-inproc", "onnx"): "llama-inproc is llama-cpp-python in process: GGUF models only",
    ("mlserver-inproc", "gguf"): "MLServer 1.7.1 as installed here has no llama.cpp runtime for GGUF models",
    ("mlserver", "gguf"): "MLServer 1.7.1 as installed here has no llama.cpp runtime for GGUF models",
}
IN_PROCESS = ("floor", "llama-inproc")


def skipped(servers: list[str], models: list[PeerModel]) -> list[dict]:
    """The (server, model) pairs that are not measured, each with its reason."""
    return [{"server": s, "model": m.name, "reason": SKIP_REASONS[(s, m.fmt)]}
            for s in servers for m in models if m.fmt not in SERVES[s]]  # fmt: skip


@dataclass
class OrtFloor:
    """One onnxruntime session shared by every thread."""

    session: Any
    inputs: dict[str, np.ndarray]

    def call(self) -> object:
        return self.session.run(None, self.inputs)

    def outputs(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in floor_outputs(self.session, self.inputs).items() if isinstance(v, np.ndarray)}

    def settings(self) -> dict:
        return {"runtime": f"onnxruntime {metadata.version('onnxruntime')}", "session": "default options, CPU"}

    def close(self) -> None:
        self.session = None


@dataclass
class LlamaFloor:
    """One llama_cpp.Llama (embedding) shared by every thread; calls take turns on ``lock``."""

    llama: Any
    texts: list[str]
    n_ctx: int
    n_threads: int
    pooling: str
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, model: PeerModel) -> LlamaFloor:
        import llama_cpp

        from mlos_executor.llama_backend import LlamaSettings
        from mlos_registry.gguf_model import DEFAULT_CONTEXT_LIMIT, inspect_gguf

        described = inspect_gguf(model.path(), model.name)  # what the registry reads from the file
        n_ctx = min(described.trained_context_length, DEFAULT_CONTEXT_LIMIT)
        n_threads = LlamaSettings().resolved_threads()  # the executor's default: usable CPUs less one
        llama = llama_cpp.Llama(model_path=str(model.path()), embedding=True, n_ctx=n_ctx, n_threads=n_threads,
                                verbose=False)  # fmt: skip
        texts = [t.decode() for t in model.texts]
        return cls(llama, texts, n_ctx, n_threads, described.facts.get("pooling_type", "?"))

    def call(self) -> object:
        with self.lock:
            return self.llama.embed(self.texts)

    def outputs(self) -> dict[str, np.ndarray]:
        return {"embedding": np.asarray(self.call(), dtype=np.float32)}

    def settings(self) -> dict:
        return {"runtime": f"llama-cpp-python {metadata.version('llama-cpp-python')}", "n_ctx": self.n_ctx,
                "n_threads": self.n_threads, "pooling": self.pooling, "embedding": True,
                "calls": "one Llama, serialised by a lock"}  # fmt: skip

    def close(self) -> None:
        with self.lock:
            self.llama.close()


def open_floor(model: PeerModel) -> OrtFloor | LlamaFloor:
    """The in-process runtime of the model's format."""
    if model.fmt == "gguf":
        return LlamaFloor.open(model)
    return OrtFloor(open_floor_session(str(model.path())), model.inputs())


def floor_row(label: str, floor: OrtFloor | LlamaFloor, conc: int, args: argparse.Namespace) -> dict:
    """C threads on one in-process runtime; CPU of this process over the measured window (timers
    at its edges, armed together with the window), as ``cpu_ms_per_request[label]``."""
    marks: list[float] = []
    timers = [threading.Timer(t, lambda: marks.append(cpu_s(os.getpid()) or 0.0))
              for t in (args.floor_warmup_s, args.floor_warmup_s + args.floor_duration_s)]  # fmt: skip
    for timer in timers:
        timer.start()
    result = run_threads(floor.call, conc, args.floor_warmup_s, args.floor_duration_s)
    for timer in timers:
        timer.join()
    cpu = {label: round((marks[1] - marks[0]) * 1e3 / result.completed, 4)} if result.completed else {}
    return {"throughput_rps": result.throughput_rps, "p50_ms": result.p50_ms,
            "p90_ms": result.p90_ms, "p99_ms": result.p99_ms, "request_count": result.completed,
            "cpu_ms_per_request": cpu, "cpu_window_s": result.duration_s, "errors": result.errors}  # fmt: skip
