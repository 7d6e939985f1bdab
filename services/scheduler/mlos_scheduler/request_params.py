"""The request-level parameters the scheduler acts on: Triton's `priority` and `timeout`, and ours,
`best_effort`. Shared by the gRPC and the REST front door (REST turns JSON values into the same
typed protocol parameters first, see rest_convert.infer_parameter).

Contract, each breach an InvalidArgument naming the parameter:
- `priority`: an integer (int64 or uint64 form, as tritonclient sends it), 0..MAX_PRIORITY;
  1 = highest, 0 = the model's default. Whether it is within the model's own levels is decided at
  admission, where the model is known.
- `timeout`: an integer number of microseconds, 0..MAX_TIMEOUT_US; 0 = none (the model's default).
- `best_effort`: a boolean (bool_param; JSON true/false). Integer 0/1 and strings such as "true"
  are refused rather than guessed at: tritonclient (`parameters={"best_effort": True}`), its HTTP
  client and perf_analyzer (`--request-parameter best_effort:true:bool`) all send a real boolean.
- any other parameter must carry a value (an empty InferParameter is refused); its value is not
  interpreted, as in Triton, which passes unknown parameters on. (Generation models read two
  more, `first_token_timeout` and `triton_enable_empty_final_response`: generation_params.py,
  with `bounded_int` and `boolean` from here.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlos.inference import grpc_service_pb2 as pb
from mlos_scheduler.errors import BadRequest

MAX_PRIORITY = 64                       # the most priority levels a model may have (registry's limit)
MAX_TIMEOUT_US = 24 * 3600 * 1_000_000  # a day: anything longer is a unit mistake, not a deadline

_KIND_NAMES = {
    "bool_param": "a boolean", "int64_param": "an integer", "uint64_param": "an integer",
    "string_param": "a string", "double_param": "a floating-point number", None: "no value",
}


@dataclass(frozen=True, slots=True)
class RequestParams:
    priority: int = 0
    timeout_us: int = 0
    best_effort: bool = False


def _kind(p: pb.InferParameter) -> str | None:
    return p.WhichOneof("parameter_choice")


def _value_text(p: pb.InferParameter) -> str:
    kind = _kind(p)
    return _KIND_NAMES[kind] + ("" if kind is None else f" ({getattr(p, kind)!r})")


def bounded_int(p: pb.InferParameter, name: str, maximum: int, meaning: str) -> int:
    kind = _kind(p)
    if kind not in ("int64_param", "uint64_param"):
        raise BadRequest(f"parameter {name!r} must be an integer ({meaning}), got {_value_text(p)}")
    value = getattr(p, kind)
    if value < 0:
        raise BadRequest(f"parameter {name!r} must not be negative ({meaning}), got {value}")
    if value > maximum:
        raise BadRequest(f"parameter {name!r} must be at most {maximum} ({meaning}), got {value}")
    return value


def boolean(p: pb.InferParameter, name: str) -> bool:
    """A boolean parameter's value; integers and strings such as "true" are refused."""
    if _kind(p) != "bool_param":
        raise BadRequest(f"parameter {name!r} must be a boolean (true or false), got {_value_text(p)}")
    return p.bool_param


def parse(params: Mapping[str, pb.InferParameter]) -> RequestParams:
    """The checked request parameters; absent ones take their defaults."""
    for key, p in params.items():
        if _kind(p) is None:
            raise BadRequest(f"parameter {key!r} carries no value; set one of its typed fields or leave it out")
    priority = timeout_us = 0
    best_effort = False
    if "priority" in params:
        priority = bounded_int(params["priority"], "priority", MAX_PRIORITY, "1 = highest, 0 = the model's default")
    if "timeout" in params:
        timeout_us = bounded_int(params["timeout"], "timeout", MAX_TIMEOUT_US, "microseconds, 0 = none")
    if "best_effort" in params:
        best_effort = boolean(params["best_effort"], "best_effort")
    return RequestParams(priority, timeout_us, best_effort)
