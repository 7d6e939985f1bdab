"""KServe v2 REST bodies (JSON and Triton's binary-tensor extension) <-> scheduler domain types.

A request body is a JSON header, optionally followed by the inputs' bytes: the header's length
is the `Inference-Header-Content-Length` HTTP header, and each input carried that way says its
size in `parameters.binary_data_size` (in input order). JSON `data` is converted once to the raw
little-endian layout the gRPC path uses, and the request then goes through the same
`convert.infer_request` validation. Every bad shape, size or value is an InvalidArgument with a
message naming the input; nothing is allocated for a claimed size before it is checked.
Tensors placed in system shared memory keep their `shared_memory_*` parameters (as typed protocol
parameters) and carry no data; shm_convert.ShmRequest checks and reads or writes them, as for gRPC.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf.message import Message

from mlos.inference import grpc_service_pb2 as pb
from mlos_common.errors import InvalidArgument, Unimplemented
from mlos_common.tensors import array_from_raw, array_to_raw, dtype, element_count, encode_bytes
from mlos_scheduler.convert import SHM_PARAMS
from mlos_scheduler.domain import InferResult
from mlos_scheduler.shm_convert import BYTE_SIZE, OFFSET, REGION, ShmRef

HEADER_LENGTH = "Inference-Header-Content-Length"
_NUMBER_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}  # numpy kind of the target -> JSON kinds accepted


@dataclass(frozen=True, slots=True)
class OutputPlan:
    """How the answer is written: which outputs travel as binary data."""

    binary: dict[str, bool]   # per requested output
    binary_default: bool      # request-level binary_data_output, for outputs not named


def json_object(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument(f"{what} must be a JSON array, got {type(value).__name__}")
    return value


def json_str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty string")
    return value


def json_size(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(f"{what} must be a non-negative integer, got {value!r}")
    return value


def infer_parameter(name: str, value: Any) -> pb.InferParameter:
    """A JSON parameter value as the protocol's typed parameter."""
    if isinstance(value, bool):
        return pb.InferParameter(bool_param=value)
    if isinstance(value, int):
        if not -(1 << 63) <= value < (1 << 63):
            raise InvalidArgument(f"parameter {name!r} is out of the 64-bit range")
        return pb.InferParameter(int64_param=value)
    if isinstance(value, float):
        return pb.InferParameter(double_param=value)
    if isinstance(value, str):
        return pb.InferParameter(string_param=value)
    raise InvalidArgument(f"parameter {name!r} must be a boolean, number or string, got {type(value).__name__}")


def _set_parameters(target, params: dict, skip: tuple[str, ...]) -> None:
    for key, value in params.items():
        if key not in skip:
            target[key].CopyFrom(infer_parameter(key, value))


def load_request(name: str, params: dict) -> pb.RepositoryModelLoadRequest:
    """A REST load's JSON `parameters` as the gRPC request (Triton: "config" holds the model
    config as a JSON string; "file:..." values are base64 strings, refused by the load)."""
    msg = pb.RepositoryModelLoadRequest(model_name=name)
    for key, value in params.items():
        param = msg.parameters[key]
        if isinstance(value, bool):
            param.bool_param = value
        elif isinstance(value, int):
            param.int64_param = value
        elif isinstance(value, str):
            param.string_param = value
        else:
            raise InvalidArgument(f"load parameter {key!r} must be a string, integer or boolean, got {type(value).__name__}")
    return msg


def body_object(body: bytes) -> dict:
    """A JSON object body; an empty (or blank) body is an empty object."""
    return split_body(body, None)[0] if body.strip() else {}


def split_body(body: bytes, header_length: str | None) -> tuple[dict, memoryview]:
    """The JSON header as a dict and the binary tail (empty without the header-length header)."""
    if header_length is None:
        n = len(body)
    else:
        if not header_length.strip().isdigit():
            raise InvalidArgument(f"{HEADER_LENGTH} must be a non-negative integer, got {header_length!r}")
        n = int(header_length)
        if n > len(body):
            raise InvalidArgument(f"{HEADER_LENGTH} is {n} but the body has only {len(body)} bytes")
    try:
        header = json.loads(bytes(body[:n]))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidArgument(f"request body is not valid JSON: {exc or 'nested too deeply'}") from None
    if not isinstance(header, dict):
        raise InvalidArgument("request body must be a JSON object")
    return header, memoryview(body)[n:]


def _flatten(data: Any) -> list:
    if not isinstance(data, list):
        return [data]
    if all(not isinstance(d, list) for d in data):
        return data
    out: list = []
    for d in data:
        out.extend(_flatten(d))
    return out


def json_to_raw(name: str, datatype: str, shape: list[int], data: Any) -> bytes:
    """JSON `data` (flat or nested, row-major) as raw bytes; types and ranges are checked, not cast."""
    dt = dtype(datatype)
    count = element_count(shape, tensor=f"input {name!r}")
    if dt.name == "BYTES":
        items = _flatten(data)
        if not all(isinstance(s, str) for s in items):
            raise InvalidArgument(f"input {name!r}: BYTES data must be strings (send other bytes as binary data)")
        if len(items) != count:
            raise InvalidArgument(f"input {name!r}: shape {shape} needs {count} values, got {len(items)}")
        array = np.empty(count, dtype=object)
        array[:] = [s.encode("utf-8", "surrogatepass") for s in items]  # a lone surrogate stays bytes: the model judges them
        return encode_bytes(array)
    if dt.numpy is None:
        raise InvalidArgument(f"input {name!r}: {datatype} must be sent as binary data")
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"input {name!r}: data is not a rectangular array of numbers ({exc})") from None
    if array.size != count:
        raise InvalidArgument(f"input {name!r}: shape {shape} needs {count} values, got {array.size}")
    if count and array.dtype.kind not in _NUMBER_KINDS[dt.numpy.kind]:
        want = {"b": "true/false", "i": "integers", "u": "integers", "f": "numbers"}[dt.numpy.kind]
        raise InvalidArgument(f"input {name!r}: {datatype} data must be {want}")
    if count and dt.numpy.kind in "iu":
        info = np.iinfo(dt.numpy)
        low, high = int(array.min()), int(array.max())
        if low < info.min or high > info.max:
            raise InvalidArgument(f"input {name!r}: values {low}..{high} do not fit {datatype}")
    return array_to_raw(array.astype(dt.numpy, copy=False))


def infer_request(header: dict, binary: memoryview, model: str, version: str) -> tuple[pb.ModelInferRequest, OutputPlan]:
    """The request as the gRPC message `convert.infer_request` validates, and the output plan."""
    msg = pb.ModelInferRequest(model_name=model, model_version=version)
    request_id = header.get("id", "")
    if not isinstance(request_id, str):
        raise InvalidArgument("id must be a string")
    msg.id = request_id
    params = json_object(header.get("parameters"), "parameters")
    binary_default = params.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise InvalidArgument("parameter 'binary_data_output' must be true or false")
    _set_parameters(msg.parameters, params, ("binary_data_output",))
    offset = 0
    for i, t in enumerate(_list(header.get("inputs"), "inputs")):
        t = json_object(t, f"inputs[{i}]")
        name = json_str(t.get("name"), f"inputs[{i}].name")
        datatype = json_str(t.get("datatype"), f"input {name!r}: datatype")
        shape = [json_size(d, f"input {name!r}: each shape dimension") for d in _list(t.get("shape"), f"input {name!r}: shape")]
        tparams = json_object(t.get("parameters"), f"input {name!r}: parameters")
        tensor = msg.inputs.add(name=name, datatype=datatype, shape=shape)
        _set_parameters(tensor.parameters, tparams, ("binary_data_size",))
        if any(k in tparams for k in SHM_PARAMS):  # read from its region by shm_convert.ShmRequest
            if "data" in t or "binary_data_size" in tparams:
                raise InvalidArgument(
                    f"input {name!r} is placed in shared memory and also carries data; send one or the other"
                )
        elif "binary_data_size" in tparams:
            size = json_size(tparams["binary_data_size"], f"input {name!r}: binary_data_size")
            if "data" in t:
                raise InvalidArgument(f"input {name!r} has both data and binary_data_size")
            if offset + size > len(binary):
                raise InvalidArgument(
                    f"input {name!r}: binary_data_size {size} runs past the body "
                    f"({len(binary) - offset} binary bytes left)"
                )
            msg.raw_input_contents.append(binary[offset:offset + size].tobytes())
            offset += size
        elif "data" in t:
            msg.raw_input_contents.append(json_to_raw(name, datatype, shape, t["data"]))
        else:
            raise InvalidArgument(f"input {name!r} has neither data nor binary_data_size")
    if offset != len(binary):
        raise InvalidArgument(f"{len(binary) - offset} bytes of binary data are not claimed by any input")
    wanted: dict[str, bool] = {}
    for i, o in enumerate(_list(header.get("outputs"), "outputs")):
        o = json_object(o, f"outputs[{i}]")
        name = json_str(o.get("name"), f"outputs[{i}].name")
        oparams = json_object(o.get("parameters"), f"output {name!r}: parameters")
        if oparams.get("classification"):
            raise Unimplemented(f"output {name!r}: the classification extension is not supported")
        flag = oparams.get("binary_data", binary_default)
        if not isinstance(flag, bool):
            raise InvalidArgument(f"output {name!r}: binary_data must be true or false")
        wanted[name] = flag
        out = msg.outputs.add(name=name)
        _set_parameters(out.parameters, oparams, ("binary_data", "classification"))
    return msg, OutputPlan(wanted, binary_default)


def _json_data(t) -> list:
    array = array_from_raw(t.name, t.datatype, t.shape, t.raw).reshape(-1)
    if t.datatype == "BYTES":
        try:
            return [bytes(b).decode() for b in array]
        except UnicodeDecodeError:
            raise InvalidArgument(f"output {t.name!r} is not UTF-8 text; ask for it as binary data") from None
    if t.datatype == "FP16":
        array = array.astype(np.float32)
    return array.tolist()


def _shm_parameters(ref: ShmRef) -> dict[str, Any]:
    params: dict[str, Any] = {REGION: ref.region, BYTE_SIZE: ref.byte_size}
    if ref.offset:
        params[OFFSET] = ref.offset
    return params


def infer_response(
    result: InferResult, plan: OutputPlan, placed: dict[str, ShmRef] | None = None
) -> tuple[bytes, int | None]:
    """The response body and, when outputs travel as binary data, the JSON header's length.

    Outputs in `placed` were written to shared memory: they carry their placement as parameters
    and no data, as in Triton."""
    outputs, chunks = [], []
    for t in result.outputs:
        entry: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
        ref = placed.get(t.name) if placed else None
        if ref is not None:
            entry["parameters"] = _shm_parameters(ref)
        elif plan.binary.get(t.name, plan.binary_default) or t.datatype == "BF16":
            entry["parameters"] = {"binary_data_size": len(t.raw)}
            chunks.append(t.raw)
        else:
            entry["data"] = _json_data(t)
        outputs.append(entry)
    body: dict[str, Any] = {"model_name": result.model, "model_version": str(result.version)}
    if result.id:
        body["id"] = result.id
    body["outputs"] = outputs
    header = json.dumps(body, separators=(",", ":")).encode()
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def proto_json(msg: Message) -> dict:
    """A protocol message as Triton's HTTP JSON: proto field names, enum names, integers as numbers,
    scalars always present, unset sub-messages and oneof members left out."""
    out: dict[str, Any] = {}
    for fd in msg.DESCRIPTOR.fields:
        oneof = fd.containing_oneof
        if oneof is not None and msg.WhichOneof(oneof.name) != fd.name:
            continue
        value = getattr(msg, fd.name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            vfd = fd.message_type.fields_by_name["value"]
            out[fd.name] = {k: _scalar(vfd, v) for k, v in value.items()}
        elif fd.is_repeated:
            out[fd.name] = [_scalar(fd, v) for v in value]
        elif fd.type == fd.TYPE_MESSAGE and not msg.HasField(fd.name):
            continue
        else:
            out[fd.name] = _scalar(fd, value)
    return out


def _scalar(fd, value: Any) -> Any:
    if fd.type == fd.TYPE_MESSAGE:
        return proto_json(value)
    if fd.type == fd.TYPE_ENUM:
        return fd.enum_type.values_by_number[value].name
    if fd.type == fd.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value
