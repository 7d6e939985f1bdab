"""Open Inference Protocol messages <-> scheduler domain types."""

from __future__ import annotations

from collections.abc import Callable

from mlos.inference import grpc_service_pb2 as pb
from mlos_common.errors import MlosError, Unimplemented
from mlos_common.tensors import array_from_values, array_to_raw, dtype
from mlos_scheduler import request_params
from mlos_scheduler.domain import InferRequest, InferResult, ModelInfo, Tensor
from mlos_scheduler.errors import BadRequest
from mlos_scheduler.generation_params import INPUTS as GENERATION_INPUTS
from mlos_scheduler.generation_params import OPTIONAL_INPUTS as GENERATION_OPTIONAL
from mlos_scheduler.generation_params import OUTPUTS as GENERATION_OUTPUTS
from mlos_scheduler.overrides import ConfigOverride, parse_override

DATA_TYPES = {
    "BOOL": pb.TYPE_BOOL, "UINT8": pb.TYPE_UINT8, "UINT16": pb.TYPE_UINT16, "UINT32": pb.TYPE_UINT32,
    "UINT64": pb.TYPE_UINT64, "INT8": pb.TYPE_INT8, "INT16": pb.TYPE_INT16, "INT32": pb.TYPE_INT32,
    "INT64": pb.TYPE_INT64, "FP16": pb.TYPE_FP16, "FP32": pb.TYPE_FP32, "FP64": pb.TYPE_FP64,
    "BYTES": pb.TYPE_STRING, "BF16": pb.TYPE_BF16,
}
LLAMA_PLATFORM, LLAMA_BACKEND = "llama_cpp_gguf", "llamacpp"
SHM_PARAMS = ("shared_memory_region", "shared_memory_offset", "shared_memory_byte_size")


def _in_shm(t: pb.ModelInferRequest.InferInputTensor) -> bool:
    return bool(t.parameters) and any(k in t.parameters for k in SHM_PARAMS)


def infer_request(
    msg: pb.ModelInferRequest,
    time_remaining: float | None,
    now: float,
    shm_input: Callable[[pb.ModelInferRequest.InferInputTensor], Tensor] | None = None,
) -> InferRequest:
    """`shm_input` reads an input placed in shared memory (see shm_convert.ShmRequest); inputs in
    shared memory take no raw_input_contents entry, as in Triton."""
    if not msg.model_name:
        raise BadRequest("model_name is empty")
    params = request_params.parse(msg.parameters)  # before any tensor is converted
    raw = msg.raw_input_contents
    in_message = sum(1 for t in msg.inputs if not _in_shm(t))
    if raw and len(raw) != in_message:
        raise BadRequest(f"raw_input_contents has {len(raw)} entries for {in_message} inputs not in shared memory")
    inputs = []
    raw_index = 0
    for t in msg.inputs:
        if _in_shm(t):
            if shm_input is None:
                raise Unimplemented("shared memory inputs are not served on this endpoint; send the tensor bytes")
            inputs.append(shm_input(t))
            continue
        shape = tuple(t.shape)
        if raw:
            if t.HasField("contents"):
                raise BadRequest(f"input {t.name!r} sets contents while raw_input_contents is used")
            inputs.append(Tensor(t.name, t.datatype, shape, raw[raw_index]))
            raw_index += 1
            continue
        dt = dtype(t.datatype)
        if not dt.contents_field:
            raise BadRequest(f"input {t.name!r}: {t.datatype} can only travel in raw_input_contents")
        values = getattr(t.contents, dt.contents_field)
        array = array_from_values(t.name, t.datatype, shape, values)
        inputs.append(Tensor(t.name, t.datatype, shape, array_to_raw(array)))
    timeout_us = params.timeout_us
    limits = [x for x in (time_remaining, timeout_us / 1e6 if timeout_us else None) if x is not None]
    return InferRequest(
        model=msg.model_name,
        version=msg.model_version,
        id=msg.id,
        inputs=inputs,
        outputs=[o.name for o in msg.outputs],
        priority=params.priority,
        timeout_us=timeout_us,
        best_effort=params.best_effort,
        deadline=now + min(limits) if limits else None,
    )


def load_override(msg: pb.RepositoryModelLoadRequest) -> ConfigOverride | None:
    """The validated `config` parameter of a load request; other parameters are refused."""
    override = None
    for key, param in sorted(msg.parameters.items()):
        if key.startswith("file:"):
            raise Unimplemented(
                f"parameter {key!r}: model files sent with the load request are not supported; "
                "register the file with the registry (mlos models register), then load it"
            )
        if key != "config":
            raise BadRequest(f"parameter {key!r} is not supported by RepositoryModelLoad; supported: config")
        if param.WhichOneof("parameter_choice") != "string_param":
            raise BadRequest("parameter 'config' must be a string holding the model configuration JSON")
        override = parse_override(msg.model_name, param.string_param)
    return override


def stream_error(exc: Exception) -> str:
    """A stream reply's error_message: "CODE: message" (unexpected errors as INTERNAL, no details)."""
    if isinstance(exc, MlosError):
        return f"{exc.code}: {exc.message}"
    return f"INTERNAL: internal error in ModelStreamInfer: {type(exc).__name__}"


def infer_response(result: InferResult) -> pb.ModelInferResponse:
    return pb.ModelInferResponse(
        model_name=result.model,
        model_version=str(result.version),
        id=result.id,
        outputs=[pb.ModelInferResponse.InferOutputTensor(name=t.name, datatype=t.datatype, shape=t.shape)
                 for t in result.outputs],
        raw_output_contents=[t.raw for t in result.outputs],
    )


def model_metadata(m: ModelInfo) -> pb.ModelMetadataResponse:
    """A generation model shows Triton's LLM-backend signature (generation_params), not its file's."""
    inputs, outputs = (GENERATION_INPUTS, GENERATION_OUTPUTS) if m.generates else (m.inputs, m.outputs)
    tm = pb.ModelMetadataResponse.TensorMetadata
    return pb.ModelMetadataResponse(
        name=m.name,
        versions=[str(m.version)],
        platform=m.platform,
        inputs=[tm(name=s.name, datatype=s.datatype, shape=s.shape) for s in inputs],
        outputs=[tm(name=s.name, datatype=s.datatype, shape=s.shape) for s in outputs],
    )


def _instance_group(m: ModelInfo, count: int) -> list[pb.ModelInstanceGroup]:
    kind = pb.ModelInstanceGroup.KIND_GPU if m.device == "cuda" else pb.ModelInstanceGroup.KIND_AUTO
    return [pb.ModelInstanceGroup(count=max(1, count), kind=kind)]


def model_config(m: ModelInfo) -> pb.ModelConfig:
    if m.generates:
        return _generation_config(m)
    cut = 1 if m.max_batch_size > 0 else 0  # Triton: dims exclude the batch dimension
    config = pb.ModelConfig(
        name=m.name,
        platform=m.platform,
        backend=LLAMA_BACKEND if m.platform == LLAMA_PLATFORM else "onnxruntime",  # GGUF embedding models: llama.cpp
        max_batch_size=m.max_batch_size,
        input=[pb.ModelInput(name=s.name, data_type=DATA_TYPES[s.datatype], dims=s.shape[cut:]) for s in m.inputs],
        output=[pb.ModelOutput(name=s.name, data_type=DATA_TYPES[s.datatype], dims=s.shape[cut:]) for s in m.outputs],
        instance_group=_instance_group(m, m.instance_count),
    )
    if m.max_batch_size > 0:
        config.dynamic_batching.max_queue_delay_microseconds = m.max_queue_delay_us
    return config


def _generation_config(m: ModelInfo) -> pb.ModelConfig:
    """Triton's LLM-backend shape: max_batch_size 0 (generations are not batched along a
    dimension), optional stream / sampling_parameters, decoupled (ModelStreamInfer answers a
    request with many responses), and the model file's facts (architecture, context_length,
    quantization, ...) as parameters; one instance per llama context."""
    return pb.ModelConfig(
        name=m.name,
        platform=m.platform,
        backend=LLAMA_BACKEND,
        max_batch_size=0,
        input=[
            pb.ModelInput(name=s.name, data_type=DATA_TYPES[s.datatype], dims=s.shape, optional=s.name in GENERATION_OPTIONAL)
            for s in GENERATION_INPUTS
        ],
        output=[pb.ModelOutput(name=s.name, data_type=DATA_TYPES[s.datatype], dims=s.shape) for s in GENERATION_OUTPUTS],
        instance_group=_instance_group(m, m.contexts),
        parameters={k: pb.ModelParameter(string_value=v) for k, v in m.facts},
        model_transaction_policy=pb.ModelTransactionPolicy(decoupled=True),
    )
