"""What the registry makes of a GGUF file: its task, facts, signature and serving config.

- Task by content: BERT-family architectures and any file with `<arch>.pooling_type` embed;
  everything else generates text.
- Facts (text, for ModelVersion.facts): architecture, name, context_length, embedding_length,
  block_count, head_count, vocab_size, tokenizer, quantization, parameters, pooling_type.
- Signature: generate = Triton's vLLM backend layout (text_input, stream, sampling_parameters ->
  text_output); embed = one text per element of text_input -> embedding FP32 [-1, embedding_length].
- Serving config: defaults from the file; `validate_config` refuses what llama.cpp could not honour.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mlos_common.errors import InvalidArgument
from mlos_common.signatures import TensorSpec
from mlos_registry import gguf_types as types
from mlos_registry.domain import EMBED, GENERATE, ServingConfig
from mlos_registry.errors import InvalidModelFile
from mlos_registry.gguf_header import GGUFArray, GGUFHeader, Value, read_header

EMBEDDING_ARCHITECTURES = frozenset({"bert", "nomic-bert", "jina-bert-v2"})
DEFAULT_CONTEXT_LIMIT = 2048  # default context_length = min(trained, this)
DEFAULT_CHUNK_TOKENS = 4
MAX_CHUNK_TOKENS = 64
DEFAULT_CONTEXTS = {GENERATE: 2, EMBED: 1}
MAX_CONTEXTS = 8
MAX_THREADS = 256
MAX_FACT_CHARS = 256  # a fact is a label, not a payload (general.name may be 16 MiB)

GENERATE_INPUTS = (
    TensorSpec("text_input", "BYTES", (1,)),
    TensorSpec("stream", "BOOL", (1,)),
    TensorSpec("sampling_parameters", "BYTES", (1,)),
)
GENERATE_OUTPUTS = (TensorSpec("text_output", "BYTES", (-1,)),)
# Fields of ServingConfig that only GGUF models have (threads: llama.cpp's, or ONNX intra-op threads).
GGUF_FIELDS = ("context_length", "chunk_tokens", "gpu_layers", "contexts")


@dataclass(frozen=True, slots=True)
class GGUFModel:
    task: str  # GENERATE or EMBED
    facts: dict[str, str]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    trained_context_length: int


def _positive_int(header: GGUFHeader, key: str, shown_as: str) -> int:
    value = header.metadata.get(key)
    if value is None:
        raise InvalidModelFile(f"{shown_as}: the GGUF metadata has no {key!r}, which llama.cpp needs")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidModelFile(f"{shown_as}: GGUF metadata {key!r} must be a positive integer, got {value!r}")
    return value


def _text(value: Value | None) -> str | None:
    """A scalar as fact text; arrays (e.g. per-layer head counts) as 'N values', nothing for None."""
    if value is None:
        return None
    if isinstance(value, GGUFArray):
        return f"{value.length} values ({value.item_type})"
    return str(value)


def quantization(header: GGUFHeader) -> str:
    """llama.cpp's name for general.file_type, else the ggml type holding the most elements."""
    file_type = header.metadata.get("general.file_type")
    if isinstance(file_type, int) and not isinstance(file_type, bool):
        name = types.FILE_TYPES.get(file_type & ~types.FILE_TYPE_GUESSED)
        if name is not None:
            return name + (" (guessed)" if file_type & types.FILE_TYPE_GUESSED else "")
    weights: Counter[int] = Counter()
    for info in header.tensors:
        weights[info.ggml_type] += info.elements
    if not weights:
        return "unknown"
    return types.GGML_TYPES[weights.most_common(1)[0][0]][0]


def task_of(header: GGUFHeader, architecture: str) -> str:
    if architecture in EMBEDDING_ARCHITECTURES or f"{architecture}.pooling_type" in header.metadata:
        return EMBED
    return GENERATE


def facts_of(header: GGUFHeader, shown_as: str) -> tuple[str, dict[str, str]]:
    """(architecture, facts); InvalidModelFile when the keys llama.cpp needs are missing or wrong."""
    architecture = header.metadata.get("general.architecture")
    if not isinstance(architecture, str) or not architecture:
        raise InvalidModelFile(f"{shown_as}: the GGUF metadata has no general.architecture (a text), so llama.cpp "
                               "cannot load it")
    meta = header.metadata
    tokens = meta.get("tokenizer.ggml.tokens")
    pooling = meta.get(f"{architecture}.pooling_type")
    found = {
        "architecture": architecture,
        "name": _text(meta.get("general.name")),
        "context_length": str(_positive_int(header, f"{architecture}.context_length", shown_as)),
        "embedding_length": _text(meta.get(f"{architecture}.embedding_length")),
        "block_count": _text(meta.get(f"{architecture}.block_count")),
        "head_count": _text(meta.get(f"{architecture}.attention.head_count")),
        "vocab_size": str(tokens.length) if isinstance(tokens, GGUFArray) else _text(meta.get(f"{architecture}.vocab_size")),
        "tokenizer": _text(meta.get("tokenizer.ggml.model")),
        "quantization": quantization(header),
        "parameters": str(sum(info.elements for info in header.tensors)),
        "pooling_type": types.POOLING_TYPES.get(pooling, str(pooling)) if isinstance(pooling, int) else _text(pooling),
        "gguf_version": str(header.version),
    }
    return architecture, {key: _clip(value) for key, value in found.items() if value is not None}


def _clip(text: str) -> str:
    return text if len(text) <= MAX_FACT_CHARS else text[: MAX_FACT_CHARS - 1] + "…"


def inspect_gguf(path: Path, shown_as: str) -> GGUFModel:
    """Reads the GGUF header at `path` (bounded; see gguf_header) and derives the model's description."""
    with open(path, "rb") as f:
        header = read_header(f, shown_as)
    architecture, facts = facts_of(header, shown_as)
    task = task_of(header, architecture)
    if task == EMBED:
        width = _positive_int(header, f"{architecture}.embedding_length", shown_as)
        inputs: tuple[TensorSpec, ...] = (TensorSpec("text_input", "BYTES", (-1,)),)
        outputs: tuple[TensorSpec, ...] = (TensorSpec("embedding", "FP32", (-1, width)),)
    else:
        inputs, outputs = GENERATE_INPUTS, GENERATE_OUTPUTS
    return GGUFModel(task, facts, inputs, outputs, int(facts["context_length"]))


def default_config(model: GGUFModel) -> ServingConfig:
    return ServingConfig(
        max_batch_size=0,
        instance_count=1,
        device="auto",
        context_length=min(model.trained_context_length, DEFAULT_CONTEXT_LIMIT),
        chunk_tokens=DEFAULT_CHUNK_TOKENS if model.task == GENERATE else 0,
        contexts=DEFAULT_CONTEXTS[model.task],
    )


def validate_config(config: ServingConfig, model: GGUFModel, name: str) -> None:
    """Refuses serving settings llama.cpp cannot honour for this file (InvalidArgument naming the field)."""
    if config.max_batch_size:
        raise InvalidArgument(
            f"max_batch_size must stay 0 for GGUF model {name!r} (llama.cpp schedules tokens, not batches), "
            f"got {config.max_batch_size}"
        )
    if config.warmup_batch_sizes:
        raise InvalidArgument(f"warmup_batch_sizes do not apply to GGUF model {name!r}; leave them empty")
    if config.preferred_batch_sizes:
        raise InvalidArgument(f"preferred_batch_sizes do not apply to GGUF model {name!r}; leave them empty")
    if config.context_length > model.trained_context_length:
        raise InvalidArgument(
            f"context_length {config.context_length} is over the {model.trained_context_length} tokens model "
            f"{name!r} was trained with"
        )
    if model.task == GENERATE and not 1 <= config.chunk_tokens <= MAX_CHUNK_TOKENS:
        raise InvalidArgument(f"chunk_tokens must be 1..{MAX_CHUNK_TOKENS}, got {config.chunk_tokens}")
    if model.task == EMBED and config.chunk_tokens:
        raise InvalidArgument(
            f"chunk_tokens applies to generation; model {name!r} is an embedding model, leave it at 0"
        )
    if not 1 <= config.contexts <= MAX_CONTEXTS:
        raise InvalidArgument(f"contexts must be 1..{MAX_CONTEXTS}, got {config.contexts}")
    if config.threads > MAX_THREADS:
        raise InvalidArgument(f"threads must be at most {MAX_THREADS} (0 = the executor decides), got {config.threads}")
    if config.gpu_layers < 0:
        raise InvalidArgument(f"gpu_layers must be >= 0 (0 = all layers on a GPU build), got {config.gpu_layers}")


def refuse_gguf_fields(config: ServingConfig, name: str) -> None:
    """Generation settings on a tensor (ONNX) model are refused, naming the field."""
    for field in GGUF_FIELDS:
        if getattr(config, field):
            raise InvalidArgument(
                f"{field} applies only to GGUF models (llama.cpp); model {name!r} is an ONNX model, leave it at 0"
            )
    if config.threads > MAX_THREADS:  # the executor refuses more than its host's CPUs at load
        raise InvalidArgument(f"threads must be at most {MAX_THREADS} (0 = the executor decides), got {config.threads}")
