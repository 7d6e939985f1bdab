"""Domain types of the front door. Tensors are raw little-endian bytes end to end."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlos_common.shm import ShmSpan
from mlos_common.signatures import TensorSpec


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One registered model version, as the scheduler needs it."""

    name: str
    version: int
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int
    max_queue_delay_us: int
    instance_count: int
    device: str
    default_timeout_us: int = 0
    platform: str = "onnxruntime_onnx"
    default_priority: int = 0                       # 0 = none (the lowest level); 1 = highest
    priority_levels: int = 0                        # 0 = the scheduler's default
    preferred_batch_sizes: tuple[int, ...] = ()     # empty = max_batch_size
    warmup_batch_sizes: tuple[int, ...] = ()        # the warm-up plan sent to the executor (empty = its default)
    task: str = "infer"                             # "infer", "generate" (decoupled, text), "embed"
    facts: tuple[tuple[str, str], ...] = ()         # from the model file (GGUF: architecture, context_length, ...)
    # Generation / embedding (GGUF): ModelServingConfig's fields, sent to the executor at load.
    context_length: int = 0                         # tokens one context holds (0 = the executor's choice)
    threads: int = 0
    chunk_tokens: int = 0
    gpu_layers: int = 0
    contexts: int = 0

    @property
    def generates(self) -> bool:
        return self.task == "generate"


@dataclass(slots=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    raw: bytes | memoryview     # a view of a client's leased region for inputs placed there
    # Input: the client's window holding raw (a co-located executor maps it). Output: the
    # executor already wrote the bytes into this client window; raw is empty.
    window: ShmSpan | None = None


@dataclass(slots=True)
class InferRequest:
    model: str
    version: str                      # as sent; "" = the loaded (else latest) version
    id: str
    inputs: list[Tensor]
    outputs: list[str]                # requested outputs; empty = all
    priority: int = 0                 # Triton "priority" parameter: 1 = highest, 0 = the model's default
    timeout_us: int = 0               # Triton "timeout" parameter
    best_effort: bool = False         # "best_effort" parameter: never refused for a predicted miss
    deadline: float | None = None     # loop time by which the answer is useless
    rows: int = 1                     # batch rows this request contributes (set on admission)
    output_windows: dict[str, ShmSpan] = field(default_factory=dict)  # outputs the client placed in shm
    queued: bool = False              # passed admission and went to the batcher (later errors are not the client's)


@dataclass(slots=True)
class InferResult:
    model: str
    version: int
    id: str
    outputs: list[Tensor] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class IndexEntry:
    name: str
    version: int
    state: str      # READY, UNAVAILABLE
    reason: str


# ---- generation (models whose task is "generate") ----


@dataclass(frozen=True, slots=True)
class Sampling:
    """A generation's sampling_parameters, validated (see generation_params.py). Defaults follow
    Triton's vLLM backend: 16 tokens, temperature 1 (0 = greedy), no top-p / top-k cut."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None            # None = a random seed
    stop: tuple[str, ...] = ()


@dataclass(slots=True)
class GenerateRequest:
    model: str
    version: str                      # as sent; "" = the loaded (else latest) version
    id: str
    prompt: bytes                     # UTF-8 text (checked)
    sampling: Sampling = field(default_factory=Sampling)
    stream: bool = False              # the "stream" input: chunks as they come, else the whole text once
    priority: int = 0                 # 1 = highest, 0 = the model's default
    timeout_us: int = 0               # the whole generation ("timeout" parameter)
    first_token_timeout_us: int = 0   # time to the first token ("first_token_timeout" parameter); 0 = none
    deadline: float | None = None     # loop time by which the whole generation is useless
    empty_final: bool = False         # "triton_enable_empty_final_response": the end is an empty response


@dataclass(frozen=True, slots=True)
class GenerationChunk:
    """Text made since the previous chunk; the last one has final set."""

    text: bytes
    tokens: int
    final: bool = False
    finish_reason: str = ""           # final only: "length", "stop", "cancelled"
    prompt_tokens: int = 0            # first chunk only
    first_token_ns: int = 0           # first chunk only, as measured by the executor
