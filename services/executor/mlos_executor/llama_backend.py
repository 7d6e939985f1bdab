"""llama.cpp backend (llama-cpp-python): GGUF generation models with several contexts on one set of
weights, and GGUF embedding models.

A generation model loads its weights once (`LlamaWeights`) and opens `contexts` llama.cpp contexts on
them (`Context`): each holds one generation's KV cache. Two ways to let an urgent generation run while
another is unfinished, both here and measured (bench/bench_generation.py): a second context (nothing
is copied, memory for one more KV cache), or saving the unfinished generation's KV state out of the
context (`Context.save`, bytes) and restoring it later (`Context.restore`). The token scheduler
(generation.py) uses free contexts first and saves state only when every context is taken.

Everything here blocks and must run off the event loop, one call at a time per model (a context is
not thread-safe; a model's calls are serialised by its scheduler's single worker thread).

llama.cpp aborts the process on some malformed files (GGML_ASSERT), so a file is loaded in a child
process first (gguf_probe.py) before the executor's own process touches it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlos_common.errors import InvalidArgument
from mlos_executor.errors import ModelLoadFailed

log = logging.getLogger(__name__)

DEFAULT_CONTEXT = 2048
DEFAULT_CHUNK_TOKENS = 4
DEFAULT_CONTEXTS = 2


def llama_module() -> Any:
    """llama_cpp, imported on first use (a GGUF load), or ModelLoadFailed saying how to install it."""
    try:
        import llama_cpp
    except ImportError:
        raise ModelLoadFailed(
            "this executor cannot serve GGUF models: llama-cpp-python is not installed "
            "(pip install 'mlos[llm]', or `make install`, which builds it once)"
        ) from None
    return llama_cpp


def gpu_offload_supported() -> bool:
    try:
        return bool(llama_module().llama_supports_gpu_offload())
    except ModelLoadFailed:
        return False


@dataclass(frozen=True, slots=True)
class LlamaSettings:
    """A GGUF model's serving settings (ModelServingConfig), resolved: 0s replaced by defaults."""

    context_length: int = 0   # 0 = min(trained length, DEFAULT_CONTEXT)
    threads: int = 0          # 0 = the usable CPUs less one (at least one)
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    gpu_layers: int = 0       # 0 = all layers when the build offloads, none otherwise
    contexts: int = DEFAULT_CONTEXTS
    device: str = "auto"

    def resolved_threads(self) -> int:
        """llama.cpp's threads: as set, else one less than the usable CPUs. Its worker threads wait
        for each other at every graph node; on 2 cores, 2 threads beside the executor's own event loop
        (and the scheduler's) stalled a tiny model's first token by up to 0.5 s, 1 thread gave 3 ms."""
        if self.threads > 0:
            return self.threads
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, cpus - 1)

    def resolved_gpu_layers(self) -> int:
        if self.device == "cpu" or not gpu_offload_supported():
            return 0
        return self.gpu_layers if self.gpu_layers > 0 else 999  # llama.cpp caps at the model's layers


@dataclass
class LlamaWeights:
    """A loaded GGUF generation model: weights, vocabulary and its contexts."""

    path: Path
    settings: LlamaSettings
    model: Any                # llama_cpp._internals.LlamaModel
    n_vocab: int
    n_ctx: int
    n_ctx_train: int
    add_bos: bool
    end_tokens: frozenset[int]
    gpu_layers: int
    contexts: list[Context] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, settings: LlamaSettings) -> LlamaWeights:
        llama_cpp = llama_module()
        from llama_cpp import _internals

        llama_cpp.llama_backend_init()
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's chatter: errors only
        params = llama_cpp.llama_model_default_params()
        gpu_layers = settings.resolved_gpu_layers()
        params.n_gpu_layers = gpu_layers
        try:
            model = _internals.LlamaModel(path_model=str(path), params=params, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadFailed(f"llama.cpp could not load the GGUF model: {exc}") from None
        n_ctx_train = model.n_ctx_train()
        n_ctx = settings.context_length or min(n_ctx_train, DEFAULT_CONTEXT)
        ends = {t for t in (model.token_eos(), model.token_eot()) if t >= 0}
        weights = cls(path, settings, model, model.n_vocab(), n_ctx, n_ctx_train, model.add_bos_token(),
                      frozenset(ends), gpu_layers)
        threads = settings.resolved_threads()
        for _ in range(max(1, settings.contexts)):
            context = Context.open(weights, threads)
            context.decode(weights.tokenize(b"warm-up") or [0], 0)  # first-run allocations, off the first request
            context.clear()
            weights.contexts.append(context)
        return weights

    def tokenize(self, text: bytes) -> list[int]:
        return self.model.tokenize(text, self.add_bos, False)

    def piece(self, token: int) -> bytes:
        """The bytes of one token (a byte-fallback token is one byte of a UTF-8 character)."""
        llama_cpp = llama_module()
        size = 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_token_to_piece(self.model.vocab, token, buffer, size, 0, False)
            if n >= 0:
                return buffer.raw[:n]
            size = -n

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()
        self.model.close()


@dataclass
class Context:
    """One llama.cpp context (a KV cache) on shared weights; `owner` is the generation in it."""

    index: int
    ctx: Any                  # llama_cpp._internals.LlamaContext
    batch: Any                # llama_cpp._internals.LlamaBatch
    n_vocab: int
    n_batch: int
    owner: object | None = None

    @classmethod
    def open(cls, weights: LlamaWeights, threads: int) -> Context:
        llama_cpp = llama_module()
        from llama_cpp import _internals

        params = llama_cpp.llama_context_default_params()
        params.n_ctx = weights.n_ctx
        params.n_batch = params.n_ubatch = min(512, weights.n_ctx)
        params.n_threads = params.n_threads_batch = threads
        params.no_perf = True
        try:
            ctx = _internals.LlamaContext(model=weights.model, params=params, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadFailed(f"llama.cpp could not open a context of {weights.n_ctx} tokens: {exc}") from None
        batch = _internals.LlamaBatch(n_tokens=params.n_batch, embd=0, n_seq_max=1, verbose=False)
        return cls(len(weights.contexts), ctx, batch, weights.n_vocab, params.n_batch)

    def clear(self) -> None:
        """Forgets the cached tokens (metadata only: the KV data is overwritten as tokens come;
        zeroing it cost ~1-2 ms per generation start on a 1,024-token bench model)."""
        if self.ctx.memory is not None:
            llama_module().llama_memory_clear(self.ctx.memory, False)

    def decode(self, tokens: list[int], n_past: int) -> np.ndarray:
        """Evaluates `tokens` at positions n_past.. (in n_batch pieces); returns a copy of the logits
        after the last one."""
        for start in range(0, len(tokens), self.n_batch):
            piece = tokens[start:start + self.n_batch]
            self.batch.set_batch(batch=piece, n_past=n_past + start, logits_all=False)
            self.ctx.decode(self.batch)
        logits = self.ctx.get_logits_ith(-1)
        return np.ctypeslib.as_array(logits, shape=(self.n_vocab,)).copy()

    def save(self) -> bytes:
        """The context's KV state (sequence 0) as bytes, for `restore` in this or another context."""
        llama_cpp = llama_module()
        size = llama_cpp.llama_state_seq_get_size(self.ctx.ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(self.ctx.ctx, buffer, size, 0)
        return ctypes.string_at(buffer, written)

    def restore(self, state: bytes) -> None:
        llama_cpp = llama_module()
        self.clear()
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if llama_cpp.llama_state_seq_set_data(self.ctx.ctx, buffer, len(state), 0) != len(state):
            raise RuntimeError("llama.cpp refused a saved KV state")

    def close(self) -> None:
        self.batch.close()
        self.ctx.close()


@dataclass
class LlamaEmbedder:
    """A GGUF embedding model (BERT family): texts in, one pooled vector each (llama-cpp-python's
    Llama.embed). One llama.cpp context, which is not thread-safe: the executor runs batches on
    several threads, so `embed` calls take turns on `_lock` (two decodes at once trip a GGML_ASSERT
    and abort the process)."""

    llama: Any
    dim: int
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, path: Path, settings: LlamaSettings) -> LlamaEmbedder:
        llama_cpp = llama_module()
        try:
            llama = llama_cpp.Llama(
                model_path=str(path), embedding=True, n_ctx=settings.context_length or 512,
                n_threads=settings.resolved_threads(), n_gpu_layers=settings.resolved_gpu_layers(), verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadFailed(f"llama.cpp could not load the GGUF embedding model: {exc}") from None
        return cls(llama, int(llama.n_embd()))

    def embed(self, texts: list[bytes]) -> np.ndarray:
        decoded = []
        for i, raw in enumerate(texts):
            try:
                decoded.append(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise InvalidArgument(
                    f"input 'text_input': element {i} is not UTF-8 text ({exc.reason} at byte {exc.start})"
                ) from None
        if not decoded:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return self._embed_locked(decoded)

    def _embed_locked(self, decoded: list[str]) -> np.ndarray:
        n_ctx = self.llama.n_ctx()
        for i, text in enumerate(decoded):
            count = len(self.llama.tokenize(text.encode("utf-8"), add_bos=True))
            if count > n_ctx:
                raise InvalidArgument(
                    f"input 'text_input': element {i} is {count} tokens, over the model's context of {n_ctx}"
                )
        vectors = self.llama.embed(decoded)
        return np.asarray(vectors, dtype=np.float32).reshape(len(decoded), self.dim)

    def close(self) -> None:
        with self._lock:
            self.llama.close()
