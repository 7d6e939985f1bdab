from mlos.common.v1 import tensor_pb2 as _tensor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelKey(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class LoadModelRequest(_message.Message):
    __slots__ = ("model", "sha256", "config", "task")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    model: ModelKey
    sha256: str
    config: _tensor_pb2.ModelServingConfig
    task: str
    def __init__(self, model: _Optional[_Union[ModelKey, _Mapping]] = ..., sha256: _Optional[str] = ..., config: _Optional[_Union[_tensor_pb2.ModelServingConfig, _Mapping]] = ..., task: _Optional[str] = ...) -> None: ...

class LoadModelResponse(_message.Message):
    __slots__ = ("model", "warmup")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WARMUP_FIELD_NUMBER: _ClassVar[int]
    model: LoadedModel
    warmup: _containers.RepeatedCompositeFieldContainer[WarmupTiming]
    def __init__(self, model: _Optional[_Union[LoadedModel, _Mapping]] = ..., warmup: _Optional[_Iterable[_Union[WarmupTiming, _Mapping]]] = ...) -> None: ...

class WarmupTiming(_message.Message):
    __slots__ = ("batch_size", "runs", "mean_ms", "max_ms")
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    MEAN_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    batch_size: int
    runs: int
    mean_ms: float
    max_ms: float
    def __init__(self, batch_size: _Optional[int] = ..., runs: _Optional[int] = ..., mean_ms: _Optional[float] = ..., max_ms: _Optional[float] = ...) -> None: ...

class UnloadModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ModelKey
    def __init__(self, model: _Optional[_Union[ModelKey, _Mapping]] = ...) -> None: ...

class UnloadModelResponse(_message.Message):
    __slots__ = ("unloaded",)
    UNLOADED_FIELD_NUMBER: _ClassVar[int]
    unloaded: bool
    def __init__(self, unloaded: _Optional[bool] = ...) -> None: ...

class ExecuteBatchRequest(_message.Message):
    __slots__ = ("model", "inputs", "output_names")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAMES_FIELD_NUMBER: _ClassVar[int]
    model: ModelKey
    inputs: _containers.RepeatedCompositeFieldContainer[_tensor_pb2.Tensor]
    output_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model: _Optional[_Union[ModelKey, _Mapping]] = ..., inputs: _Optional[_Iterable[_Union[_tensor_pb2.Tensor, _Mapping]]] = ..., output_names: _Optional[_Iterable[str]] = ...) -> None: ...

class ExecuteBatchResponse(_message.Message):
    __slots__ = ("outputs", "compute_ns")
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_NS_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedCompositeFieldContainer[_tensor_pb2.Tensor]
    compute_ns: int
    def __init__(self, outputs: _Optional[_Iterable[_Union[_tensor_pb2.Tensor, _Mapping]]] = ..., compute_ns: _Optional[int] = ...) -> None: ...

class Work(_message.Message):
    __slots__ = ("id", "model", "inputs", "output_names", "timeout_us", "traceparent", "output_windows", "outputs_by_shm", "generate")
    class OutputWindowsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _tensor_pb2.ShmRef
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_tensor_pb2.ShmRef, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAMES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_US_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_BY_SHM_FIELD_NUMBER: _ClassVar[int]
    GENERATE_FIELD_NUMBER: _ClassVar[int]
    id: int
    model: ModelKey
    inputs: _containers.RepeatedCompositeFieldContainer[_tensor_pb2.Tensor]
    output_names: _containers.RepeatedScalarFieldContainer[str]
    timeout_us: int
    traceparent: str
    output_windows: _containers.MessageMap[str, _tensor_pb2.ShmRef]
    outputs_by_shm: bool
    generate: Generate
    def __init__(self, id: _Optional[int] = ..., model: _Optional[_Union[ModelKey, _Mapping]] = ..., inputs: _Optional[_Iterable[_Union[_tensor_pb2.Tensor, _Mapping]]] = ..., output_names: _Optional[_Iterable[str]] = ..., timeout_us: _Optional[int] = ..., traceparent: _Optional[str] = ..., output_windows: _Optional[_Mapping[str, _tensor_pb2.ShmRef]] = ..., outputs_by_shm: _Optional[bool] = ..., generate: _Optional[_Union[Generate, _Mapping]] = ...) -> None: ...

class Generate(_message.Message):
    __slots__ = ("prompt", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "priority", "first_token_timeout_us", "stream")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOKEN_TIMEOUT_US_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    prompt: bytes
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    seed: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    priority: int
    first_token_timeout_us: int
    stream: bool
    def __init__(self, prompt: _Optional[bytes] = ..., max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[int] = ..., seed: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., priority: _Optional[int] = ..., first_token_timeout_us: _Optional[int] = ..., stream: _Optional[bool] = ...) -> None: ...

class GenerationChunk(_message.Message):
    __slots__ = ("text", "tokens", "final", "finish_reason", "prompt_tokens", "first_token_ns", "queued_ns", "preemptions", "decode_ns")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOKEN_NS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_NS_FIELD_NUMBER: _ClassVar[int]
    PREEMPTIONS_FIELD_NUMBER: _ClassVar[int]
    DECODE_NS_FIELD_NUMBER: _ClassVar[int]
    text: bytes
    tokens: int
    final: bool
    finish_reason: str
    prompt_tokens: int
    first_token_ns: int
    queued_ns: int
    preemptions: int
    decode_ns: int
    def __init__(self, text: _Optional[bytes] = ..., tokens: _Optional[int] = ..., final: _Optional[bool] = ..., finish_reason: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., first_token_ns: _Optional[int] = ..., queued_ns: _Optional[int] = ..., preemptions: _Optional[int] = ..., decode_ns: _Optional[int] = ...) -> None: ...

class LinkOffer(_message.Message):
    __slots__ = ("arena", "host_id", "min_bytes")
    ARENA_FIELD_NUMBER: _ClassVar[int]
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_BYTES_FIELD_NUMBER: _ClassVar[int]
    arena: _tensor_pb2.ShmRef
    host_id: str
    min_bytes: int
    def __init__(self, arena: _Optional[_Union[_tensor_pb2.ShmRef, _Mapping]] = ..., host_id: _Optional[str] = ..., min_bytes: _Optional[int] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("work", "offer", "release", "cancel")
    WORK_FIELD_NUMBER: _ClassVar[int]
    OFFER_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    work: _containers.RepeatedCompositeFieldContainer[Work]
    offer: LinkOffer
    release: _containers.RepeatedScalarFieldContainer[int]
    cancel: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, work: _Optional[_Iterable[_Union[Work, _Mapping]]] = ..., offer: _Optional[_Union[LinkOffer, _Mapping]] = ..., release: _Optional[_Iterable[int]] = ..., cancel: _Optional[_Iterable[int]] = ...) -> None: ...

class LinkAnswer(_message.Message):
    __slots__ = ("host_id", "nonce", "arena", "error")
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    ARENA_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    nonce: bytes
    arena: _tensor_pb2.ShmRef
    error: str
    def __init__(self, host_id: _Optional[str] = ..., nonce: _Optional[bytes] = ..., arena: _Optional[_Union[_tensor_pb2.ShmRef, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class WorkResult(_message.Message):
    __slots__ = ("id", "outputs", "compute_ns", "error_code", "error_message", "chunk")
    ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_NS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    id: int
    outputs: _containers.RepeatedCompositeFieldContainer[_tensor_pb2.Tensor]
    compute_ns: int
    error_code: str
    error_message: str
    chunk: GenerationChunk
    def __init__(self, id: _Optional[int] = ..., outputs: _Optional[_Iterable[_Union[_tensor_pb2.Tensor, _Mapping]]] = ..., compute_ns: _Optional[int] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., chunk: _Optional[_Union[GenerationChunk, _Mapping]] = ...) -> None: ...

class ExecuteReply(_message.Message):
    __slots__ = ("results", "answer")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[WorkResult]
    answer: LinkAnswer
    def __init__(self, results: _Optional[_Iterable[_Union[WorkResult, _Mapping]]] = ..., answer: _Optional[_Union[LinkAnswer, _Mapping]] = ...) -> None: ...

class LoadedModel(_message.Message):
    __slots__ = ("model", "sha256", "runtime", "providers", "inputs", "outputs", "load_ms", "executions", "in_flight", "intra_op_threads", "wide_intra_op_threads", "wide_runs", "mean_run_us", "inline_runs", "memory_bytes", "memory_predicted_bytes", "memory_predicted_by", "task", "generation", "idle_ms", "busy", "instances", "shared_weight_bytes")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    LOAD_MS_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    INTRA_OP_THREADS_FIELD_NUMBER: _ClassVar[int]
    WIDE_INTRA_OP_THREADS_FIELD_NUMBER: _ClassVar[int]
    WIDE_RUNS_FIELD_NUMBER: _ClassVar[int]
    MEAN_RUN_US_FIELD_NUMBER: _ClassVar[int]
    INLINE_RUNS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_PREDICTED_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_PREDICTED_BY_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    IDLE_MS_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    SHARED_WEIGHT_BYTES_FIELD_NUMBER: _ClassVar[int]
    model: ModelKey
    sha256: str
    runtime: str
    providers: _containers.RepeatedScalarFieldContainer[str]
    inputs: _containers.RepeatedCompositeFieldContainer[_tensor_pb2.TensorSpec]
    outputs: _containers.RepeatedCompositeFieldContainer[_tensor_pb2.TensorSpec]
    load_ms: int
    executions: int
    in_flight: int
    intra_op_threads: int
    wide_intra_op_threads: int
    wide_runs: int
    mean_run_us: int
    inline_runs: int
    memory_bytes: int
    memory_predicted_bytes: int
    memory_predicted_by: str
    task: str
    generation: GenerationStats
    idle_ms: int
    busy: int
    instances: int
    shared_weight_bytes: int
    def __init__(self, model: _Optional[_Union[ModelKey, _Mapping]] = ..., sha256: _Optional[str] = ..., runtime: _Optional[str] = ..., providers: _Optional[_Iterable[str]] = ..., inputs: _Optional[_Iterable[_Union[_tensor_pb2.TensorSpec, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[_tensor_pb2.TensorSpec, _Mapping]]] = ..., load_ms: _Optional[int] = ..., executions: _Optional[int] = ..., in_flight: _Optional[int] = ..., intra_op_threads: _Optional[int] = ..., wide_intra_op_threads: _Optional[int] = ..., wide_runs: _Optional[int] = ..., mean_run_us: _Optional[int] = ..., inline_runs: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., memory_predicted_bytes: _Optional[int] = ..., memory_predicted_by: _Optional[str] = ..., task: _Optional[str] = ..., generation: _Optional[_Union[GenerationStats, _Mapping]] = ..., idle_ms: _Optional[int] = ..., busy: _Optional[int] = ..., instances: _Optional[int] = ..., shared_weight_bytes: _Optional[int] = ...) -> None: ...

class GenerationStats(_message.Message):
    __slots__ = ("context_length", "contexts", "threads", "chunk_tokens", "active", "waiting", "completed", "cancelled", "preemptions", "state_saves", "state_restores", "tokens", "gpu_layers")
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    PREEMPTIONS_FIELD_NUMBER: _ClassVar[int]
    STATE_SAVES_FIELD_NUMBER: _ClassVar[int]
    STATE_RESTORES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    GPU_LAYERS_FIELD_NUMBER: _ClassVar[int]
    context_length: int
    contexts: int
    threads: int
    chunk_tokens: int
    active: int
    waiting: int
    completed: int
    cancelled: int
    preemptions: int
    state_saves: int
    state_restores: int
    tokens: int
    gpu_layers: int
    def __init__(self, context_length: _Optional[int] = ..., contexts: _Optional[int] = ..., threads: _Optional[int] = ..., chunk_tokens: _Optional[int] = ..., active: _Optional[int] = ..., waiting: _Optional[int] = ..., completed: _Optional[int] = ..., cancelled: _Optional[int] = ..., preemptions: _Optional[int] = ..., state_saves: _Optional[int] = ..., state_restores: _Optional[int] = ..., tokens: _Optional[int] = ..., gpu_layers: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("executor_id", "runtime_mode", "available_providers", "models", "in_flight", "intra_op_threads", "execution_slots", "link_socket", "host_id", "shm_usable", "memory_budget_bytes", "memory_used_bytes", "rss_bytes", "memory_free_bytes", "evictions", "recent_evictions", "runtime_mode_reason", "placement", "gpus", "gpu_note", "memory_pool", "shared_weights")
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_MODE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    INTRA_OP_THREADS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_SLOTS_FIELD_NUMBER: _ClassVar[int]
    LINK_SOCKET_FIELD_NUMBER: _ClassVar[int]
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    SHM_USABLE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    EVICTIONS_FIELD_NUMBER: _ClassVar[int]
    RECENT_EVICTIONS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_MODE_REASON_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    GPU_NOTE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_POOL_FIELD_NUMBER: _ClassVar[int]
    SHARED_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    executor_id: str
    runtime_mode: str
    available_providers: _containers.RepeatedScalarFieldContainer[str]
    models: _containers.RepeatedCompositeFieldContainer[LoadedModel]
    in_flight: int
    intra_op_threads: int
    execution_slots: int
    link_socket: str
    host_id: str
    shm_usable: bool
    memory_budget_bytes: int
    memory_used_bytes: int
    rss_bytes: int
    memory_free_bytes: int
    evictions: int
    recent_evictions: _containers.RepeatedCompositeFieldContainer[EvictionRecord]
    runtime_mode_reason: str
    placement: Placement
    gpus: _containers.RepeatedCompositeFieldContainer[GpuDevice]
    gpu_note: str
    memory_pool: BufferPoolStats
    shared_weights: SharedWeightStats
    def __init__(self, executor_id: _Optional[str] = ..., runtime_mode: _Optional[str] = ..., available_providers: _Optional[_Iterable[str]] = ..., models: _Optional[_Iterable[_Union[LoadedModel, _Mapping]]] = ..., in_flight: _Optional[int] = ..., intra_op_threads: _Optional[int] = ..., execution_slots: _Optional[int] = ..., link_socket: _Optional[str] = ..., host_id: _Optional[str] = ..., shm_usable: _Optional[bool] = ..., memory_budget_bytes: _Optional[int] = ..., memory_used_bytes: _Optional[int] = ..., rss_bytes: _Optional[int] = ..., memory_free_bytes: _Optional[int] = ..., evictions: _Optional[int] = ..., recent_evictions: _Optional[_Iterable[_Union[EvictionRecord, _Mapping]]] = ..., runtime_mode_reason: _Optional[str] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ..., gpus: _Optional[_Iterable[_Union[GpuDevice, _Mapping]]] = ..., gpu_note: _Optional[str] = ..., memory_pool: _Optional[_Union[BufferPoolStats, _Mapping]] = ..., shared_weights: _Optional[_Union[SharedWeightStats, _Mapping]] = ...) -> None: ...

class EvictionRecord(_message.Message):
    __slots__ = ("model", "memory_bytes", "reason", "for_model", "idle_s")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FOR_MODEL_FIELD_NUMBER: _ClassVar[int]
    IDLE_S_FIELD_NUMBER: _ClassVar[int]
    model: ModelKey
    memory_bytes: int
    reason: str
    for_model: ModelKey
    idle_s: float
    def __init__(self, model: _Optional[_Union[ModelKey, _Mapping]] = ..., memory_bytes: _Optional[int] = ..., reason: _Optional[str] = ..., for_model: _Optional[_Union[ModelKey, _Mapping]] = ..., idle_s: _Optional[float] = ...) -> None: ...

class Placement(_message.Message):
    __slots__ = ("pinned", "numa_node", "cpus", "numa_nodes", "reason")
    PINNED_FIELD_NUMBER: _ClassVar[int]
    NUMA_NODE_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    NUMA_NODES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    pinned: bool
    numa_node: int
    cpus: str
    numa_nodes: int
    reason: str
    def __init__(self, pinned: _Optional[bool] = ..., numa_node: _Optional[int] = ..., cpus: _Optional[str] = ..., numa_nodes: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class GpuDevice(_message.Message):
    __slots__ = ("index", "name", "total_bytes", "free_bytes", "budget_bytes", "pci_bus_id", "used")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    PCI_BUS_ID_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    budget_bytes: int
    pci_bus_id: str
    used: bool
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ..., total_bytes: _Optional[int] = ..., free_bytes: _Optional[int] = ..., budget_bytes: _Optional[int] = ..., pci_bus_id: _Optional[str] = ..., used: _Optional[bool] = ...) -> None: ...

class BufferPoolStats(_message.Message):
    __slots__ = ("enabled", "hits", "misses", "allocations", "allocated_bytes", "held_bytes")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_BYTES_FIELD_NUMBER: _ClassVar[int]
    HELD_BYTES_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    hits: int
    misses: int
    allocations: int
    allocated_bytes: int
    held_bytes: int
    def __init__(self, enabled: _Optional[bool] = ..., hits: _Optional[int] = ..., misses: _Optional[int] = ..., allocations: _Optional[int] = ..., allocated_bytes: _Optional[int] = ..., held_bytes: _Optional[int] = ...) -> None: ...

class SharedWeightStats(_message.Message):
    __slots__ = ("enabled", "held_bytes", "saved_bytes", "initializers", "reused")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    HELD_BYTES_FIELD_NUMBER: _ClassVar[int]
    SAVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    INITIALIZERS_FIELD_NUMBER: _ClassVar[int]
    REUSED_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    held_bytes: int
    saved_bytes: int
    initializers: int
    reused: int
    def __init__(self, enabled: _Optional[bool] = ..., held_bytes: _Optional[int] = ..., saved_bytes: _Optional[int] = ..., initializers: _Optional[int] = ..., reused: _Optional[int] = ...) -> None: ...
