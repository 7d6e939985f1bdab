"""Output buffers reused per (shape, dtype), bound to ONNX Runtime through IOBinding.

Without the pool every run's outputs are fresh numpy arrays that ONNX Runtime allocates and
Python frees once the reply is built. With it (`MLOS_EXECUTOR_MEMORY_POOL=true`), a model's
outputs are written into arrays the pool already holds:

- The first run of a model with a given input signature (names, shapes, dtypes) runs plainly
  and records the output shapes and dtypes it produced; later runs with that signature bind
  each output to a pooled array of that shape and dtype (`IOBinding.bind_output` with the
  array's address) and inputs with `bind_cpu_input` (the request's bytes, no copy), then
  `run_with_iobinding`.
- A buffer is free again only when nothing but the pool references it (CPython's reference
  count: the reply builder, a view or a slice of it all hold a reference), so a buffer still
  being serialised, or kept by a caller, is never handed to another run. Concurrent runs
  therefore never share a live buffer; when every buffer of a key is busy, or the pool holds
  `max_bytes` already, the run gets a fresh array that the pool does not keep (a miss).
- Models whose inputs or outputs are strings, and signatures whose output shapes turn out to
  depend on the data (the bound run fails, the plain one does not), are not pooled.

ONNX Runtime's own CPU arena (on by default) keeps serving the intermediate tensors either way.
Counters (hits, misses, bytes allocated) are read by the executor's Prometheus collector.
No grpc here.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort

Signature = tuple[tuple[str, tuple[int, ...], str], ...]
Layout = tuple[tuple[tuple[int, ...], np.dtype], ...]  # per output: shape, dtype


def _references(buffer: np.ndarray) -> int:
    return sys.getrefcount(buffer)


def _calibrate() -> int:
    """References a buffer held only by a pool list has, seen from BufferPool.take's loop."""
    kept = [np.empty(0)]
    for buffer in kept:
        return _references(buffer)
    raise AssertionError("unreachable")


_POOL_ONLY = _calibrate()


@dataclass
class BufferPool:
    """Arrays kept per (shape, dtype), shared by every model of one executor; thread-safe."""

    max_bytes: int = 256 << 20
    max_per_key: int = 8
    hits: int = 0  # outputs written into a pooled buffer
    misses: int = 0  # outputs that needed a new array (first of its kind, all busy, or pool full)
    allocations: int = 0  # arrays the pool allocated (kept or not)
    allocated_bytes: int = 0
    held_bytes: int = 0  # bytes of the arrays the pool keeps
    _buffers: dict[tuple[tuple[int, ...], str], list[np.ndarray]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A C-contiguous array of `shape` and `dtype` that no one else references."""
        key = (shape, dtype.str)
        with self._lock:
            kept = self._buffers.setdefault(key, [])
            for buffer in kept:
                if _references(buffer) <= _POOL_ONLY:
                    self.hits += 1
                    return buffer
            self.misses += 1
            self.allocations += 1
            buffer = np.empty(shape, dtype)
            self.allocated_bytes += buffer.nbytes
            if len(kept) < self.max_per_key and self.held_bytes + buffer.nbytes <= self.max_bytes:
                kept.append(buffer)
                self.held_bytes += buffer.nbytes
            return buffer

@dataclass
class PooledRunner:
    """Runs a model's sessions with their outputs in `pool` buffers once their layout is known."""

    pool: BufferPool
    layouts: dict[Signature, Layout | None] = field(default_factory=dict)  # None: not poolable

    def run(self, session: ort.InferenceSession, feeds: dict[str, np.ndarray],
            output_names: list[str]) -> list[np.ndarray]:
        signature = (*((n, a.shape, a.dtype.str) for n, a in sorted(feeds.items())), *(("", (), n) for n in output_names))
        layout = self.layouts.get(signature, ())
        if layout == ():
            outputs = session.run(output_names, feeds)
            self.layouts[signature] = _layout(feeds, outputs)
            return outputs
        if layout is None:
            return session.run(output_names, feeds)
        buffers = [self.pool.take(shape, dtype) for shape, dtype in layout]
        binding = session.io_binding()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        for name, buffer in zip(output_names, buffers, strict=True):
            binding.bind_output(name, "cpu", 0, buffer.dtype, list(buffer.shape), buffer.ctypes.data)
        try:
            session.run_with_iobinding(binding)
        except Exception:  # noqa: BLE001 - e.g. output shapes that depend on the data: run plainly
            outputs = session.run(output_names, feeds)
            self.layouts[signature] = None
            return outputs
        return buffers


def _layout(feeds: dict[str, np.ndarray], outputs: list[np.ndarray]) -> Layout | None:
    """The outputs' shapes and dtypes; None when a tensor is text (strings cannot be bound)."""
    if any(a.dtype.kind in "OUS" for a in feeds.values()):
        return None
    if any(not isinstance(o, np.ndarray) or o.dtype.kind in "OUS" for o in outputs):
        return None
    return tuple((tuple(o.shape), o.dtype) for o in outputs)
