"""Our `inference` protos must keep Triton's/KServe's wire layout, so unmodified
tritonclient.grpc clients and perf_analyzer interoperate.

The expected numbers are written out here from Triton's grpc_service.proto and
model_config.proto, and every message we declare is also compared with tritonclient's generated
classes, read in a child process: tritonclient registers its own `inference.*` messages in the
default descriptor pool, which collides with ours in one process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from google.protobuf.descriptor import FieldDescriptor as F

from mlos.inference import grpc_service_pb2 as pb

STR, BOOL, I32, I64, U32, U64, FLT, DBL, BYT, MSG, ENUM = (
    F.TYPE_STRING, F.TYPE_BOOL, F.TYPE_INT32, F.TYPE_INT64, F.TYPE_UINT32, F.TYPE_UINT64,
    F.TYPE_FLOAT, F.TYPE_DOUBLE, F.TYPE_BYTES, F.TYPE_MESSAGE, F.TYPE_ENUM,
)
ONE, REP, MAP = "singular", "repeated", "map"

# message -> {field: (number, type, cardinality)}
WIRE: dict[str, dict[str, tuple[int, int, str]]] = {
    "ModelInferRequest": {
        "model_name": (1, STR, ONE),
        "model_version": (2, STR, ONE),
        "id": (3, STR, ONE),
        "parameters": (4, MSG, MAP),
        "inputs": (5, MSG, REP),
        "outputs": (6, MSG, REP),
        "raw_input_contents": (7, BYT, REP),
    },
    "ModelInferRequest.InferInputTensor": {
        "name": (1, STR, ONE),
        "datatype": (2, STR, ONE),
        "shape": (3, I64, REP),
        "parameters": (4, MSG, MAP),
        "contents": (5, MSG, ONE),
    },
    "ModelInferRequest.InferRequestedOutputTensor": {
        "name": (1, STR, ONE),
        "parameters": (2, MSG, MAP),
    },
    "ModelInferResponse": {
        "model_name": (1, STR, ONE),
        "model_version": (2, STR, ONE),
        "id": (3, STR, ONE),
        "parameters": (4, MSG, MAP),
        "outputs": (5, MSG, REP),
        "raw_output_contents": (6, BYT, REP),
    },
    "ModelInferResponse.InferOutputTensor": {
        "name": (1, STR, ONE),
        "datatype": (2, STR, ONE),
        "shape": (3, I64, REP),
        "parameters": (4, MSG, MAP),
        "contents": (5, MSG, ONE),
    },
    "ModelStreamInferResponse": {
        "error_message": (1, STR, ONE),
        "infer_response": (2, MSG, ONE),
    },
    "InferTensorContents": {
        "bool_contents": (1, BOOL, REP),
        "int_contents": (2, I32, REP),
        "int64_contents": (3, I64, REP),
        "uint_contents": (4, U32, REP),
        "uint64_contents": (5, U64, REP),
        "fp32_contents": (6, FLT, REP),
        "fp64_contents": (7, DBL, REP),
        "bytes_contents": (8, BYT, REP),
    },
    "InferParameter": {
        "bool_param": (1, BOOL, ONE),
        "int64_param": (2, I64, ONE),
        "string_param": (3, STR, ONE),
        "double_param": (4, DBL, ONE),
        "uint64_param": (5, U64, ONE),
    },
    "ModelConfig": {
        "name": (1, STR, ONE),
        "platform": (2, STR, ONE),
        "max_batch_size": (4, I32, ONE),
        "input": (5, MSG, REP),
        "output": (6, MSG, REP),
        "instance_group": (7, MSG, REP),
        "dynamic_batching": (11, MSG, ONE),
        "backend": (17, STR, ONE),
    },
    "ModelInput": {
        "name": (1, STR, ONE),
        "data_type": (2, ENUM, ONE),
        "dims": (4, I64, REP),
    },
    "ModelOutput": {
        "name": (1, STR, ONE),
        "data_type": (2, ENUM, ONE),
        "dims": (3, I64, REP),
    },
    "ModelStatistics": {
        "name": (1, STR, ONE),
        "version": (2, STR, ONE),
        "last_inference": (3, U64, ONE),
        "inference_count": (4, U64, ONE),
        "execution_count": (5, U64, ONE),
        "inference_stats": (6, MSG, ONE),
        "batch_stats": (7, MSG, REP),
    },
    "RepositoryIndexResponse.ModelIndex": {
        "name": (1, STR, ONE),
        "version": (2, STR, ONE),
        "state": (3, STR, ONE),
        "reason": (4, STR, ONE),
    },
    "RepositoryModelLoadRequest": {
        "repository_name": (1, STR, ONE),
        "model_name": (2, STR, ONE),
        "parameters": (3, MSG, MAP),
    },
    "SystemSharedMemoryStatusRequest": {"name": (1, STR, ONE)},
    "SystemSharedMemoryStatusResponse": {"regions": (1, MSG, MAP)},
    "SystemSharedMemoryStatusResponse.RegionStatus": {
        "name": (1, STR, ONE),
        "key": (2, STR, ONE),
        "offset": (3, U64, ONE),
        "byte_size": (4, U64, ONE),
    },
    "SystemSharedMemoryRegisterRequest": {
        "name": (1, STR, ONE),
        "key": (2, STR, ONE),
        "offset": (3, U64, ONE),
        "byte_size": (4, U64, ONE),
    },
    "SystemSharedMemoryUnregisterRequest": {"name": (1, STR, ONE)},
    "CudaSharedMemoryStatusRequest": {"name": (1, STR, ONE)},
    "CudaSharedMemoryStatusResponse": {"regions": (1, MSG, MAP)},
    "CudaSharedMemoryStatusResponse.RegionStatus": {
        "name": (1, STR, ONE),
        "device_id": (2, U64, ONE),
        "byte_size": (3, U64, ONE),
    },
    "CudaSharedMemoryRegisterRequest": {
        "name": (1, STR, ONE),
        "raw_handle": (2, BYT, ONE),
        "device_id": (3, I64, ONE),
        "byte_size": (4, U64, ONE),
    },
    "CudaSharedMemoryUnregisterRequest": {"name": (1, STR, ONE)},
}

CASES = [(msg, field, *spec) for msg, fields in WIRE.items() for field, spec in fields.items()]

# Name -> (client_streaming, server_streaming)
RPCS = {
    "ServerLive": (False, False),
    "ServerReady": (False, False),
    "ModelReady": (False, False),
    "ServerMetadata": (False, False),
    "ModelMetadata": (False, False),
    "ModelInfer": (False, False),
    "ModelStreamInfer": (True, True),
    "ModelConfig": (False, False),
    "ModelStatistics": (False, False),
    "RepositoryIndex": (False, False),
    "RepositoryModelLoad": (False, False),
    "RepositoryModelUnload": (False, False),
    "SystemSharedMemoryStatus": (False, False),
    "SystemSharedMemoryRegister": (False, False),
    "SystemSharedMemoryUnregister": (False, False),
    "CudaSharedMemoryStatus": (False, False),
    "CudaSharedMemoryRegister": (False, False),
    "CudaSharedMemoryUnregister": (False, False),
}


def _message(path: str):
    if "." in path:
        return _nested(path)
    return pb.DESCRIPTOR.message_types_by_name.get(path)


def _nested(path: str):
    outer, inner = path.split(".")
    return pb.DESCRIPTOR.message_types_by_name[outer].nested_types_by_name[inner]


def _cardinality(field) -> str:
    if not field.is_repeated:
        return ONE
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return MAP
    return REP


def test_package_is_inference() -> None:
    assert pb.DESCRIPTOR.package == "inference", "Triton clients address `inference.*` by name"


@pytest.mark.parametrize(("message", "field", "number", "ftype", "card"), CASES, ids=[f"{m}.{f}" for m, f, *_ in CASES])
def test_field_wire_layout(message: str, field: str, number: int, ftype: int, card: str) -> None:
    desc = _message(message)
    assert desc is not None, f"message inference.{message} is missing"
    fd = desc.fields_by_name.get(field)
    assert fd is not None, f"inference.{message}.{field} is missing"
    assert fd.number == number, f"inference.{message}.{field} is field {fd.number}, Triton uses {number}"
    assert fd.type == ftype, f"inference.{message}.{field} has wire type {fd.type}, Triton uses {ftype}"
    assert _cardinality(fd) == card, f"inference.{message}.{field} is {_cardinality(fd)}, Triton: {card}"


def test_infer_parameter_is_one_oneof() -> None:
    desc = pb.InferParameter.DESCRIPTOR
    assert [o.name for o in desc.oneofs] == ["parameter_choice"]
    members = {f.name: f.number for f in desc.oneofs[0].fields}
    assert members == {"bool_param": 1, "int64_param": 2, "string_param": 3, "double_param": 4, "uint64_param": 5}


def test_parameter_maps_hold_infer_parameter() -> None:
    entry = pb.ModelInferRequest.DESCRIPTOR.fields_by_name["parameters"].message_type
    assert entry.fields_by_name["key"].type == STR
    assert entry.fields_by_name["value"].message_type.full_name == "inference.InferParameter"


def test_service_name_and_rpcs() -> None:
    svc = pb.DESCRIPTOR.services_by_name.get("GRPCInferenceService")
    assert svc is not None and svc.full_name == "inference.GRPCInferenceService"
    found = {m.name: (m.client_streaming, m.server_streaming) for m in svc.methods}
    assert found == RPCS
    infer = svc.methods_by_name["ModelInfer"]
    assert infer.input_type.full_name == "inference.ModelInferRequest"
    assert infer.output_type.full_name == "inference.ModelInferResponse"
    stream = svc.methods_by_name["ModelStreamInfer"]
    assert stream.input_type.full_name == "inference.ModelInferRequest"
    assert stream.output_type.full_name == "inference.ModelStreamInferResponse"


def test_encoded_bytes_match_triton_layout() -> None:
    """A hand-built wire encoding (tags from Triton's numbers) parses into the right fields."""
    # field 1 (model_name, LEN) = "m"; field 7 (raw_input_contents, LEN) = b"\x01\x02"
    wire = bytes([0x0A, 1]) + b"m" + bytes([0x3A, 2, 1, 2])
    req = pb.ModelInferRequest.FromString(wire)
    assert req.model_name == "m"
    assert list(req.raw_input_contents) == [b"\x01\x02"]
    assert req.SerializeToString() == wire


# Dumps every `inference.*` message of a generated module: full name -> {field: [number, type, card]},
# and the service's methods: name -> [input, output, client_streaming, server_streaming].
_DUMP = """
import json, sys
from tritonclient.grpc import model_config_pb2, service_pb2

def card(f):
    if not f.is_repeated:
        return "singular"
    mt = f.message_type
    return "map" if mt is not None and mt.GetOptions().map_entry else "repeated"

def walk(desc, out):
    out[desc.full_name] = {f.name: [f.number, f.type, card(f)] for f in desc.fields}
    for nested in desc.nested_types:
        walk(nested, out)

messages = {}
for module in (service_pb2, model_config_pb2):
    for desc in module.DESCRIPTOR.message_types_by_name.values():
        walk(desc, messages)
svc = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
methods = {m.name: [m.input_type.full_name, m.output_type.full_name, m.client_streaming, m.server_streaming]
           for m in svc.methods}
json.dump({"messages": messages, "methods": methods}, sys.stdout)
"""


@pytest.fixture(scope="module")
def triton() -> dict:
    """tritonclient's generated descriptors, read in a child process (its pool collides with ours)."""
    done = subprocess.run([sys.executable, "-c", _DUMP], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"could not read tritonclient's descriptors: {done.stderr[-2000:]}"
    return json.loads(done.stdout)


def _ours() -> list:
    found = []

    def walk(desc) -> None:
        if not desc.GetOptions().map_entry:
            found.append(desc)
        for nested in desc.nested_types:
            walk(nested)

    for desc in pb.DESCRIPTOR.message_types_by_name.values():
        walk(desc)
    return found


def test_every_message_matches_tritonclient(triton: dict) -> None:
    """Each field we declare exists in tritonclient's class with the same number, type and cardinality."""
    theirs = triton["messages"]
    problems = []
    for desc in _ours():
        fields = theirs.get(desc.full_name)
        if fields is None:
            problems.append(f"{desc.full_name}: not a Triton message")
            continue
        for fd in desc.fields:
            want = fields.get(fd.name)
            got = [fd.number, fd.type, _cardinality(fd)]
            if want != got:
                problems.append(f"{desc.full_name}.{fd.name}: ours {got}, tritonclient {want}")
    assert not problems, "\n".join(problems)


def test_every_rpc_matches_tritonclient(triton: dict) -> None:
    svc = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    for m in svc.methods:
        want = triton["methods"].get(m.name)
        got = [m.input_type.full_name, m.output_type.full_name, m.client_streaming, m.server_streaming]
        assert want == got, f"rpc {m.name}: ours {got}, tritonclient {want}"


def test_shared_memory_rpcs_are_all_declared(triton: dict) -> None:
    theirs = {n for n in triton["methods"] if "SharedMemory" in n}
    ours = {m.name for m in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods}
    assert theirs and theirs <= ours, f"missing shared memory RPCs: {sorted(theirs - ours)}"
