"""Weights held once for every loaded model that has them (`MLOS_EXECUTOR_SHARED_WEIGHTS=true`).

Two versions of one model, or fine-tunes of one base, carry many identical initializers. With
sharing on, each initializer of `min_bytes` or more is read from the model file, keyed by the
sha256 of its dtype, shape and bytes, and handed to ONNX Runtime as a user-provided initializer
(`SessionOptions.add_initializer` with an OrtValue over a numpy array the executor holds). Every
session (other models, other versions, a model's further instances or its wide session) whose
file has the same bytes gets the same OrtValue, so the weights sit in memory once. The graph's
own copy is freed by ONNX Runtime when the session finishes initialising.

The trade-off, measured (bench/bench_executor.py): ONNX Runtime's CPU kernels "prepack" a
MatMul/Gemm/Conv weight into a private copy at load; for a user-provided initializer that copy
is made per session and the shared original is kept too, which would use *more* memory than not
sharing (two sessions of a 64 MB MatMul weight: 142 MB plain, 206 MB shared with prepacking,
78 MB shared without). The Python binding offers no shared PrepackedWeightsContainer, so
sessions that take shared initializers run with prepacking off (`session.disable_prepacking`):
such MatMuls run slower (~2.2x the CPU per run for a 4096x4096 MatMul at batch 8 here). Hence
off by default.

An initializer lives as long as a session that uses it (each OnnxModel keeps its list); the
index here only holds weak references. No grpc here.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


@dataclass(eq=False)
class SharedInitializer:
    digest: str
    array: np.ndarray  # owns the memory the OrtValue points at
    value: ort.OrtValue

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)


@dataclass
class SharedWeights:
    """The executor's index of shared initializers by content digest; thread-safe."""

    min_bytes: int = 1 << 20
    reused: int = 0  # initializers a load found already held (each one memory not spent)
    _held: weakref.WeakValueDictionary[str, SharedInitializer] = field(default_factory=weakref.WeakValueDictionary)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def collect(self, path: Path) -> list[tuple[str, SharedInitializer]]:
        """Each initializer of the ONNX file at `path` of `min_bytes` or more, by its name in the
        graph, as the shared one with the same content (held from now on if none was); the
        caller keeps the list as long as its sessions live."""
        model = onnx.load(str(path), load_external_data=True)
        named: list[tuple[str, SharedInitializer]] = []
        for tensor in model.graph.initializer:
            if _nbytes(tensor) < self.min_bytes:
                continue
            array = numpy_helper.to_array(tensor, base_dir=str(path.parent))
            if array.dtype.kind not in "OUS":
                named.append((tensor.name, self._share(array)))
        return named

    def _share(self, array: np.ndarray) -> SharedInitializer:
        digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode() + array.tobytes()).hexdigest()
        with self._lock:
            held = self._held.get(digest)
            if held is not None:
                self.reused += 1
                return held
            owned = np.array(array, copy=True, order="C")
            held = SharedInitializer(digest, owned, ort.OrtValue.ortvalue_from_numpy(owned))
            self._held[digest] = held
            return held


def attach(opts: ort.SessionOptions, named: list[tuple[str, SharedInitializer]]) -> None:
    """Makes the session built with `opts` use the shared initializers (prepacking off, see above)."""
    for name, shared in named:
        opts.add_initializer(name, shared.value)
    if named:
        opts.add_session_config_entry("session.disable_prepacking", "1")


def _nbytes(tensor: onnx.TensorProto) -> int:
    count = int(np.prod(tensor.dims)) if tensor.dims else 1
    itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    return count * itemsize


@dataclass(frozen=True)
class SharingStats:
    held_bytes: int  # bytes of the distinct shared initializers in use
    saved_bytes: int  # bytes that would be held again without sharing (each further user's copy)
    initializers: int


def sharing_stats(users: Iterable[list[SharedInitializer]]) -> SharingStats:
    """What the sessions listed (each one's shared initializers) hold once and save."""
    counts: dict[str, tuple[SharedInitializer, int]] = {}
    for used in users:
        for s in used:
            held, n = counts.get(s.digest, (s, 0))
            counts[s.digest] = (held, n + 1)
    held_bytes = sum(s.nbytes for s, _ in counts.values())
    saved = sum(s.nbytes * (n - 1) for s, n in counts.values())
    return SharingStats(held_bytes, saved, len(counts))


def loaded_sharing(loaded: Iterable[object]) -> SharingStats:
    """SharingStats over an executor's loaded models (core.LoadedModel: each ONNX session, its
    instances and its wide session, counts as one user of its initializers)."""
    users: list[list[SharedInitializer]] = []
    for m in loaded:
        for model in (getattr(m, "model", None), getattr(m, "wide", None)):
            used = getattr(model, "shared", None)
            if used:
                users.extend([used] * len(getattr(model, "sessions", ()) or (1,)))
    return sharing_stats(users)
