"""Domain types of the front door. Tensors are raw little-endian bytes end to end."""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass(slots=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    raw: bytes


@dataclass(slots=True)
class InferRequest:
    model: str
    version: str                      # as sent; "" = the loaded (else latest) version
    id: str
    inputs: list[Tensor]
    outputs: list[str]                # requested outputs; empty = all
    priority: int = 0
    timeout_us: int = 0               # Triton "timeout" parameter
    deadline: float | None = None     # loop time by which the answer is useless
    rows: int = 1                     # batch rows this request contributes (set on admission)


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
