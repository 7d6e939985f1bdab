"""Helpers for tests of generation models at the front door: a generation model's ModelInfo and
the request tensors Triton's LLM clients send."""

from __future__ import annotations

import struct

from generation_testkit import generation_model

from mlos_scheduler import generation_params as gp
from mlos_scheduler.domain import ModelInfo, Tensor

CONTEXT = 128


def llama(context_length: int = CONTEXT, facts: tuple[tuple[str, str], ...] = (), task: str = "generate") -> ModelInfo:
    """A GGUF model's ModelInfo as the catalog makes it (no file behind it), named "tiny"."""
    return generation_model("tiny", task=task, facts=facts, context_length=context_length)


def text(name: str, data: bytes, shape: tuple[int, ...] = (1,), datatype: str = "BYTES") -> Tensor:
    """A BYTES tensor of one element (the raw length-prefixed layout)."""
    return Tensor(name, datatype, shape, struct.pack("<I", len(data)) + data)


def flag(value: int, name: str = gp.STREAM) -> Tensor:
    """A BOOL [1] tensor holding the byte `value`."""
    return Tensor(name, "BOOL", (1,), bytes([value]))
