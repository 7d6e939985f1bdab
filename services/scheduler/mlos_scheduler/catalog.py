"""Registry -> scheduler ModelInfo, through the registry's client."""

from __future__ import annotations

from mlos_common.signatures import TensorSpec
from mlos_registry.client import RegistryClient
from mlos_registry.domain import ModelVersion
from mlos_scheduler.core import Lister, Lookup
from mlos_scheduler.domain import ModelInfo


def model_info(mv: ModelVersion) -> ModelInfo:
    c = mv.config
    return ModelInfo(
        name=mv.name,
        version=mv.version,
        sha256=mv.sha256,
        inputs=tuple(TensorSpec(s.name, s.datatype, tuple(s.shape)) for s in mv.inputs),
        outputs=tuple(TensorSpec(s.name, s.datatype, tuple(s.shape)) for s in mv.outputs),
        max_batch_size=c.max_batch_size,
        max_queue_delay_us=c.max_queue_delay_us,
        instance_count=c.instance_count,
        device=c.device or "auto",
        default_timeout_us=c.default_timeout_us,
        default_priority=c.default_priority,
        priority_levels=c.priority_levels,
        preferred_batch_sizes=tuple(c.preferred_batch_sizes),
        task=mv.task,
        facts=tuple(sorted(mv.facts.items())),
        context_length=c.context_length,
        threads=c.threads,
        chunk_tokens=c.chunk_tokens,
        gpu_layers=c.gpu_layers,
        contexts=c.contexts,
        platform="llama_cpp_gguf" if mv.format == "gguf" else "onnxruntime_onnx",
    )


def registry_catalog(client: RegistryClient) -> tuple[Lookup, Lister]:
    async def lookup(name: str, version: int) -> ModelInfo:
        return model_info(await client.get(name, version))

    async def lister() -> list[ModelInfo]:
        return [model_info(m) for m in await client.list()]

    return lookup, lister
