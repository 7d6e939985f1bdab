"""A generation model's request at the front door, as Triton's vLLM backend takes it, checked.

Inputs (any other name is refused, listing these):
- `text_input` BYTES, one element (required): the prompt, strict UTF-8.
- `stream` BOOL, one element (optional, default false): chunks as they are made.
- `sampling_parameters` BYTES, one element (optional): a JSON object with the keys of SAMPLING_KEYS
  (see `sampling`); malformed JSON, a non-object, unknown or repeated keys, wrong types (booleans
  are not numbers), NaN/Infinity and out-of-range values are refused.
Request parameters, beside `priority` and `timeout` (request_params.py; `timeout` bounds the
whole generation): `first_token_timeout` (an MLOS extension: µs to the first token, 0 = none) and
`triton_enable_empty_final_response` (boolean: the stream ends with an empty response).
The only output is `text_output`. Every breach is a BadRequest (INVALID_ARGUMENT) naming the field.
Pure: no grpc, no I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from mlos.inference import grpc_service_pb2 as pb
from mlos_common.signatures import TensorSpec
from mlos_common.tensors import decode_bytes, element_count
from mlos_scheduler import request_params
from mlos_scheduler.domain import GenerateRequest, InferRequest, ModelInfo, Sampling, Tensor
from mlos_scheduler.errors import BadRequest
from mlos_scheduler.generation import context_tokens

TEXT_INPUT, STREAM, SAMPLING = "text_input", "stream", "sampling_parameters"
TEXT_OUTPUT = "text_output"
INPUTS = (
    TensorSpec(TEXT_INPUT, "BYTES", (1,)),
    TensorSpec(STREAM, "BOOL", (1,)),
    TensorSpec(SAMPLING, "BYTES", (1,)),
)
OPTIONAL_INPUTS = frozenset({STREAM, SAMPLING})
OUTPUTS = (TensorSpec(TEXT_OUTPUT, "BYTES", (-1,)),)
FIRST_TOKEN_TIMEOUT = "first_token_timeout"
EMPTY_FINAL = "triton_enable_empty_final_response"

SAMPLING_KEYS = ("max_tokens", "temperature", "top_p", "top_k", "seed", "stop")
MAX_TEMPERATURE = 5.0
MAX_TOP_K = (1 << 32) - 1            # the executor's field is a uint32
MAX_SEED = (1 << 64) - 1
MAX_STOPS = 8
MAX_STOP_CHARS = 256
MAX_TOKENS_CAP = (1 << 32) - 1       # when the model states no context length

_SPECS = {s.name: s for s in INPUTS}


def context_limit(model: ModelInfo) -> int:
    """Tokens a generation of `model` may hold: its serving config's context length, else the
    context length its file states (generation.context_tokens), else the executor field's limit."""
    return context_tokens(model) or MAX_TOKENS_CAP


def _one_element(t: Tensor) -> None:
    spec = _SPECS[t.name]
    if t.datatype != spec.datatype:
        raise BadRequest(f"input {t.name!r} must be {spec.datatype}, got {t.datatype}")
    count = element_count(t.shape, tensor=f"input {t.name!r}")
    if count != 1:
        raise BadRequest(f"input {t.name!r} must hold one element (shape [1]), got shape {list(t.shape)}")


def _text(t: Tensor) -> bytes:
    """The one BYTES element of `t`, checked as strict UTF-8."""
    _one_element(t)
    data = bytes(decode_bytes(t.name, t.raw, 1)[0])
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"input {t.name!r} is not valid UTF-8: {exc.reason} at byte offset {exc.start}") from None
    return data


def _flag(t: Tensor) -> bool:
    _one_element(t)
    if len(t.raw) != 1:
        raise BadRequest(f"input {t.name!r}: BOOL [1] takes 1 byte, got {len(t.raw)}")
    value = bytes(t.raw)[0]
    if value > 1:
        raise BadRequest(f"input {t.name!r}: a BOOL byte is 0 or 1, got {value}")
    return value == 1


def _integer(obj: Mapping[str, Any], key: str, where: str, low: int, high: int) -> int:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{where}.{key} must be an integer, got {json.dumps(value)}")
    if not low <= value <= high:
        raise BadRequest(f"{where}.{key} must be in [{low}, {high}], got {value}")
    return value


def _number(obj: Mapping[str, Any], key: str, where: str) -> float:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{where}.{key} must be a number, got {json.dumps(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer past float's range
        number = math.inf
    if not math.isfinite(number):  # also 1e999, which JSON parses as inf
        raise BadRequest(f"{where}.{key} must be a finite number, got {json.dumps(value)[:40]}")
    return number


def _stops(value: Any, where: str) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list):
        raise BadRequest(f"{where} must be a string or a list of strings, got {json.dumps(value)}")
    if len(stops) > MAX_STOPS:
        raise BadRequest(f"{where} holds at most {MAX_STOPS} strings, got {len(stops)}")
    for i, s in enumerate(stops):
        if not isinstance(s, str):
            raise BadRequest(f"{where}[{i}] must be a string, got {json.dumps(s)}")
        if not 1 <= len(s) <= MAX_STOP_CHARS:
            raise BadRequest(f"{where}[{i}] must have 1 to {MAX_STOP_CHARS} characters, got {len(s)}")
    return tuple(stops)


def sampling(obj: Mapping[str, Any], model: ModelInfo, where: str = SAMPLING) -> Sampling:
    """Sampling from the decoded sampling_parameters object (or, `where` = "parameters", the
    REST generate extension's parameters): absent keys take Sampling's defaults.

    max_tokens: integer 1..context_limit(model); temperature: 0..MAX_TEMPERATURE (0 = greedy);
    top_p: 0 < p <= 1; top_k: integer >= 0 (0 = off); seed: integer 0..2^64-1; stop: a string or
    a list of at most MAX_STOPS strings of 1..MAX_STOP_CHARS characters."""
    unknown = sorted(set(obj) - set(SAMPLING_KEYS))
    if unknown:
        raise BadRequest(f"{where} has unknown keys {unknown}; accepted: {list(SAMPLING_KEYS)}")
    kwargs: dict[str, Any] = {}
    if "max_tokens" in obj:
        kwargs["max_tokens"] = _integer(obj, "max_tokens", where, 1, context_limit(model))
    if "temperature" in obj:
        t = _number(obj, "temperature", where)
        if not 0.0 <= t <= MAX_TEMPERATURE:
            raise BadRequest(f"{where}.temperature must be in [0, {MAX_TEMPERATURE:g}], got {t:g}")
        kwargs["temperature"] = t
    if "top_p" in obj:
        p = _number(obj, "top_p", where)
        if not 0.0 < p <= 1.0:
            raise BadRequest(f"{where}.top_p must be in (0, 1], got {p:g}")
        kwargs["top_p"] = p
    if "top_k" in obj:
        kwargs["top_k"] = _integer(obj, "top_k", where, 0, MAX_TOP_K)
    if "seed" in obj:
        kwargs["seed"] = _integer(obj, "seed", where, 0, MAX_SEED)
    if "stop" in obj:
        kwargs["stop"] = _stops(obj["stop"], f"{where}.stop")
    return Sampling(**kwargs)


def _no_constant(name: str) -> float:
    raise BadRequest(f"{SAMPLING} is not valid JSON: {name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadRequest(f"{SAMPLING} has the key {key!r} twice")
        out[key] = value
    return out


def sampling_json(source: str, model: ModelInfo) -> Sampling:
    """Sampling from sampling_parameters' JSON text (an object; "" or whitespace = defaults)."""
    if not source.strip():
        return Sampling()
    try:
        obj = json.loads(source, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"{SAMPLING} is not valid JSON: {exc or 'nested too deeply'}") from None
    if not isinstance(obj, dict):
        raise BadRequest(f"{SAMPLING} must be a JSON object, got {type(obj).__name__}: {source[:80]!r}")
    return sampling(obj, model)


def parameters(params: Mapping[str, pb.InferParameter]) -> tuple[int, bool]:
    """(first_token_timeout_us, empty_final) from the request parameters (absent: 0, False)."""
    first_token_us = 0
    if FIRST_TOKEN_TIMEOUT in params:
        first_token_us = request_params.bounded_int(
            params[FIRST_TOKEN_TIMEOUT], FIRST_TOKEN_TIMEOUT, request_params.MAX_TIMEOUT_US,
            "microseconds to the first token, 0 = none",
        )
    empty_final = request_params.boolean(params[EMPTY_FINAL], EMPTY_FINAL) if EMPTY_FINAL in params else False
    return first_token_us, empty_final


def generate_request(model: ModelInfo, req: InferRequest, params: Mapping[str, pb.InferParameter]) -> GenerateRequest:
    """The generation `req` (decoded by convert.infer_request: priority, timeout and deadline are
    checked already) asks `model` for; `params` are the request's parameters."""
    by_name: dict[str, Tensor] = {}
    for t in req.inputs:
        if t.name not in _SPECS:
            raise BadRequest(
                f"model {model.name!r} generates text and has no input {t.name!r}; "
                f"its inputs are {[s.name for s in INPUTS]} ({TEXT_INPUT} required)"
            )
        if t.name in by_name:
            raise BadRequest(f"input {t.name!r} is given twice")
        by_name[t.name] = t
    if TEXT_INPUT not in by_name:
        raise BadRequest(f"model {model.name!r} needs input {TEXT_INPUT!r} (BYTES [1], the prompt)")
    unknown = [o for o in req.outputs if o != TEXT_OUTPUT]
    if unknown:
        raise BadRequest(f"model {model.name!r} has no outputs {unknown}; it has [{TEXT_OUTPUT!r}]")
    if req.output_windows:
        raise BadRequest(
            f"output {TEXT_OUTPUT!r} of generation model {model.name!r} cannot be placed in shared memory; "
            "it comes back in the response"
        )
    first_token_us, empty_final = parameters(params)
    return GenerateRequest(
        model=req.model,
        version=req.version,
        id=req.id,
        prompt=_text(by_name[TEXT_INPUT]),
        sampling=sampling_json(_text(by_name[SAMPLING]).decode(), model) if SAMPLING in by_name else Sampling(),
        stream=_flag(by_name[STREAM]) if STREAM in by_name else False,
        priority=req.priority,
        timeout_us=req.timeout_us,
        first_token_timeout_us=first_token_us,
        deadline=req.deadline,
        empty_final=empty_final,
    )
