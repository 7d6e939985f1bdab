"""Domain types of the registry (no grpc, no protobuf)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from mlos_common.signatures import TensorSpec

DEVICES = ("auto", "cpu", "cuda")
INFER, GENERATE, EMBED = "infer", "generate", "embed"
TASKS = (INFER, GENERATE, EMBED)
LATEST = "latest"  # the implicit alias: the highest live version
# Kinds of ModelChange.
REGISTERED, DELETED, ALIAS_SET, ALIAS_DELETED = "registered", "deleted", "alias_set", "alias_deleted"


@dataclass(frozen=True, slots=True)
class ServingConfig:
    """How a model version is served. In a request, 0 / "" means "use the default"."""

    max_batch_size: int = 0
    max_queue_delay_us: int = 0
    instance_count: int = 0
    device: str = ""
    default_timeout_us: int = 0
    default_priority: int = 0
    priority_levels: int = 0
    preferred_batch_sizes: tuple[int, ...] = ()
    # Generation and embedding models (GGUF); see ModelServingConfig in tensor.proto.
    context_length: int = 0
    threads: int = 0
    chunk_tokens: int = 0
    gpu_layers: int = 0
    contexts: int = 0
    warmup_batch_sizes: tuple[int, ...] = ()  # the warm-up plan: batch sizes run at load (empty = 1 and max)

    def __post_init__(self) -> None:
        for name in ("preferred_batch_sizes", "warmup_batch_sizes"):  # JSON gives a list
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def overridden_by(self, other: ServingConfig | None) -> ServingConfig:
        """This config with every field that `other` sets (non-zero, non-empty) taken from it."""
        if other is None:
            return self
        changes = {
            name: getattr(other, name)
            for name in self.__dataclass_fields__
            if getattr(other, name) not in (0, "", ())
        }
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class ModelVersion:
    name: str
    version: int
    format: str
    sha256: str
    size_bytes: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    config: ServingConfig
    labels: dict[str, str] = field(default_factory=dict)
    created_unix_ms: int = 0
    task: str = INFER  # INFER, GENERATE or EMBED
    facts: dict[str, str] = field(default_factory=dict)  # read from the file at registration
    aliases: tuple[str, ...] = ()  # user-defined aliases pointing here (sorted; "latest" is implicit)


@dataclass(frozen=True, slots=True)
class ModelChange:
    """One entry of the registry's change history; `revision` strictly increases, across restarts."""

    revision: int
    kind: str  # REGISTERED, DELETED, ALIAS_SET, ALIAS_DELETED
    name: str
    version: int
    alias: str = ""  # ALIAS_SET / ALIAS_DELETED only
    unix_ms: int = 0

