"""GGUF models as the executor's core sees them: the same surface as an ONNX session.

`load_gguf` probes the file in a child process (gguf_probe.py), then loads it here:
- a generation model (`GenerationModel`) serves Work.generate through its TokenScheduler; tensor
  work sent to it is refused (INVALID_ARGUMENT) - text comes through the front door's text_input;
- an embedding model (`EmbeddingModel`) is an ordinary tensor model: `text_input` BYTES [-1] (one
  text per element) in, `embedding` FP32 [-1, dim] out, run in the executor's worker threads.
No grpc here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlos_common.errors import InvalidArgument
from mlos_common.signatures import TensorSpec
from mlos_executor.generation import TokenScheduler
from mlos_executor.gguf_probe import probe
from mlos_executor.llama_backend import DEFAULT_CHUNK_TOKENS, LlamaEmbedder, LlamaSettings, LlamaWeights

GENERATE, EMBED = "generate", "embed"
GGUF_MAGIC = b"GGUF"
RUNTIME = "llama.cpp"

GENERATION_INPUTS = (
    TensorSpec("text_input", "BYTES", (1,)),
    TensorSpec("stream", "BOOL", (1,)),
    TensorSpec("sampling_parameters", "BYTES", (1,)),
)
GENERATION_OUTPUTS = (TensorSpec("text_output", "BYTES", (-1,)),)


def is_gguf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == GGUF_MAGIC


def _providers(weights_gpu_layers: int) -> tuple[str, ...]:
    return (f"llama.cpp GPU ({weights_gpu_layers} layers)",) if weights_gpu_layers else ("llama.cpp CPU",)


@dataclass
class GenerationModel:
    weights: LlamaWeights
    scheduler: TokenScheduler
    inputs: tuple[TensorSpec, ...] = GENERATION_INPUTS
    outputs: tuple[TensorSpec, ...] = GENERATION_OUTPUTS
    providers: tuple[str, ...] = ()
    task: str = GENERATE
    runtime: str = RUNTIME

    def run(self, feeds: dict[str, np.ndarray], output_names: list[str]) -> list[np.ndarray]:
        raise self.refusal()

    @staticmethod
    def refusal() -> InvalidArgument:
        return InvalidArgument(
            "this is a text generation model: send text_input (and optionally stream, sampling_parameters) "
            "through the front door's ModelInfer / ModelStreamInfer, not tensors for a batch"
        )

    async def close(self) -> None:
        await self.scheduler.close()
        await asyncio.to_thread(self.weights.close)


@dataclass
class EmbeddingModel:
    embedder: LlamaEmbedder
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    providers: tuple[str, ...] = ()
    task: str = EMBED
    runtime: str = RUNTIME
    settings: LlamaSettings = field(default_factory=LlamaSettings)

    def __post_init__(self) -> None:
        self.inputs = (TensorSpec("text_input", "BYTES", (-1,)),)
        self.outputs = (TensorSpec("embedding", "FP32", (-1, self.embedder.dim)),)

    def run(self, feeds: dict[str, np.ndarray], output_names: list[str]) -> list[np.ndarray]:
        texts = feeds["text_input"].reshape(-1)
        vectors = self.embedder.embed([bytes(t) if not isinstance(t, str) else t.encode() for t in texts])
        return [vectors for _ in output_names]

    async def close(self) -> None:
        await asyncio.to_thread(self.embedder.close)


async def load_gguf(path: Path, task: str, settings: LlamaSettings, preemption: bool = True) -> GenerationModel | EmbeddingModel:
    """Probes, then loads the GGUF file for `task` ("generate" or "embed"); ModelLoadFailed on a file
    llama.cpp refuses or crashes on."""
    await probe(path, embedding=task == EMBED)
    if task == EMBED:
        embedder = await asyncio.to_thread(LlamaEmbedder.load, path, settings)
        return EmbeddingModel(embedder, providers=_providers(settings.resolved_gpu_layers()), settings=settings)
    weights = await asyncio.to_thread(LlamaWeights.load, path, settings)
    scheduler = TokenScheduler(weights, settings.chunk_tokens or DEFAULT_CHUNK_TOKENS, preemption=preemption)
    return GenerationModel(weights, scheduler, providers=_providers(weights.gpu_layers))
