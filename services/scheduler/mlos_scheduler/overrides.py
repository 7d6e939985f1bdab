"""RepositoryModelLoad's `config` override: a Triton model-config JSON, validated, then applied.

Supported fields (snake_case, as in Triton's config.pbtxt / JSON):
  name                                              must equal the model being loaded
  max_batch_size                                    0..MAX_BATCH_SIZE; > 0 only when every input
                                                    and output of the model file has a variable
                                                    first dimension
  dynamic_batching.max_queue_delay_microseconds     0..MAX_QUEUE_DELAY_US

The override applies to the registered config of the version being loaded, for as long as it
stays loaded (a later load without `config` goes back to the registered one, as in Triton).
Anything else (unknown fields, fields MLOS does not honour such as instance_group, wrong
types, values out of range) is refused with INVALID_ARGUMENT naming the field: a setting that
would be silently ignored is worse than an error. No grpc here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from mlos_common.signatures import batchable
from mlos_scheduler.domain import ModelInfo
from mlos_scheduler.errors import BadRequest

MAX_BATCH_SIZE = 1 << 16
MAX_QUEUE_DELAY_US = 60_000_000  # one minute
_TOP_LEVEL = ("name", "max_batch_size", "dynamic_batching")
_DYNAMIC_BATCHING = ("max_queue_delay_microseconds",)


@dataclass(frozen=True, slots=True)
class ConfigOverride:
    model: str
    max_batch_size: int | None = None
    max_queue_delay_us: int | None = None

    def apply(self, model: ModelInfo) -> ModelInfo:
        """The model with the override applied; BadRequest when the model file cannot honour it."""
        changes: dict[str, Any] = {}
        if self.max_batch_size is not None:
            if self.max_batch_size > 0 and not batchable(model):
                fixed = next(s for s in (*model.inputs, *model.outputs) if not s.shape or s.shape[0] != -1)
                raise BadRequest(
                    f"config: max_batch_size {self.max_batch_size} is not possible for model {model.name!r}: "
                    f"tensor {fixed.name!r} has shape {list(fixed.shape)} (first dimension not variable); use 0"
                )
            changes["max_batch_size"] = self.max_batch_size
        if self.max_queue_delay_us is not None:
            changes["max_queue_delay_us"] = self.max_queue_delay_us
        return dataclasses.replace(model, **changes)


def _int_field(value: Any, field: str, high: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():  # protobuf JSON writes 64-bit ints as strings
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"config: {field} must be an integer, got {json.dumps(value)[:40]}")
    if not 0 <= value <= high:
        raise BadRequest(f"config: {field} must be between 0 and {high}, got {value}")
    return value


def _check_fields(obj: dict, allowed: tuple[str, ...], where: str) -> None:
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        raise BadRequest(
            f"config: field {where}{unknown[0]!r} is not supported by this server; supported: "
            f"{', '.join(where + a for a in allowed)}"
        )


def parse_override(model: str, text: str) -> ConfigOverride:
    """Validates a `config` JSON string for loading `model`; raises BadRequest naming the field."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"config: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("config: must be a JSON object (a model configuration)")
    _check_fields(doc, _TOP_LEVEL, "")
    if "name" in doc and doc["name"] != model:
        raise BadRequest(f"config: name {doc['name']!r} differs from the model being loaded, {model!r}")
    max_batch_size = None
    if "max_batch_size" in doc:
        max_batch_size = _int_field(doc["max_batch_size"], "max_batch_size", MAX_BATCH_SIZE)
    delay = None
    if "dynamic_batching" in doc:
        batching = doc["dynamic_batching"]
        if not isinstance(batching, dict):
            raise BadRequest("config: dynamic_batching must be a JSON object")
        _check_fields(batching, _DYNAMIC_BATCHING, "dynamic_batching.")
        if "max_queue_delay_microseconds" in batching:
            delay = _int_field(
                batching["max_queue_delay_microseconds"], "dynamic_batching.max_queue_delay_microseconds",
                MAX_QUEUE_DELAY_US,
            )
    return ConfigOverride(model, max_batch_size, delay)
