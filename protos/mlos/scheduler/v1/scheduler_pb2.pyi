from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetQueueStatsRequest(_message.Message):
    __slots__ = ("model_name",)
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    def __init__(self, model_name: _Optional[str] = ...) -> None: ...

class QueueStats(_message.Message):
    __slots__ = ("model_name", "model_version", "pending", "in_flight_batches", "requests", "batches", "mean_batch_size", "max_batch_size", "max_queue_delay_us", "window_us", "window_changes", "fast_path", "policy")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_BATCHES_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    MEAN_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_DELAY_US_FIELD_NUMBER: _ClassVar[int]
    WINDOW_US_FIELD_NUMBER: _ClassVar[int]
    WINDOW_CHANGES_FIELD_NUMBER: _ClassVar[int]
    FAST_PATH_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    pending: int
    in_flight_batches: int
    requests: int
    batches: int
    mean_batch_size: float
    max_batch_size: int
    max_queue_delay_us: int
    window_us: float
    window_changes: int
    fast_path: int
    policy: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., pending: _Optional[int] = ..., in_flight_batches: _Optional[int] = ..., requests: _Optional[int] = ..., batches: _Optional[int] = ..., mean_batch_size: _Optional[float] = ..., max_batch_size: _Optional[int] = ..., max_queue_delay_us: _Optional[int] = ..., window_us: _Optional[float] = ..., window_changes: _Optional[int] = ..., fast_path: _Optional[int] = ..., policy: _Optional[str] = ...) -> None: ...

class GetQueueStatsResponse(_message.Message):
    __slots__ = ("queues",)
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedCompositeFieldContainer[QueueStats]
    def __init__(self, queues: _Optional[_Iterable[_Union[QueueStats, _Mapping]]] = ...) -> None: ...

class PredictDeadlineRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "priority", "timeout_us", "batch_rows")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_US_FIELD_NUMBER: _ClassVar[int]
    BATCH_ROWS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    priority: int
    timeout_us: int
    batch_rows: int
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., priority: _Optional[int] = ..., timeout_us: _Optional[int] = ..., batch_rows: _Optional[int] = ...) -> None: ...

class PredictDeadlineResponse(_message.Message):
    __slots__ = ("predicted_completion_ms", "miss_probability", "slack_ms", "should_preempt", "allowed_ms", "queue_ms", "execution_ms", "network_ms", "queued_ahead", "basis", "would_admit")
    PREDICTED_COMPLETION_MS_FIELD_NUMBER: _ClassVar[int]
    MISS_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    SLACK_MS_FIELD_NUMBER: _ClassVar[int]
    SHOULD_PREEMPT_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_MS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_AHEAD_FIELD_NUMBER: _ClassVar[int]
    BASIS_FIELD_NUMBER: _ClassVar[int]
    WOULD_ADMIT_FIELD_NUMBER: _ClassVar[int]
    predicted_completion_ms: float
    miss_probability: float
    slack_ms: float
    should_preempt: bool
    allowed_ms: float
    queue_ms: float
    execution_ms: float
    network_ms: float
    queued_ahead: int
    basis: str
    would_admit: bool
    def __init__(self, predicted_completion_ms: _Optional[float] = ..., miss_probability: _Optional[float] = ..., slack_ms: _Optional[float] = ..., should_preempt: _Optional[bool] = ..., allowed_ms: _Optional[float] = ..., queue_ms: _Optional[float] = ..., execution_ms: _Optional[float] = ..., network_ms: _Optional[float] = ..., queued_ahead: _Optional[int] = ..., basis: _Optional[str] = ..., would_admit: _Optional[bool] = ...) -> None: ...

class GetAdmissionStatsRequest(_message.Message):
    __slots__ = ("model_name",)
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    def __init__(self, model_name: _Optional[str] = ...) -> None: ...

class ReliabilityBin(_message.Message):
    __slots__ = ("predicted_low", "predicted_high", "count", "mean_predicted", "observed_miss_rate")
    PREDICTED_LOW_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_HIGH_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEAN_PREDICTED_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_MISS_RATE_FIELD_NUMBER: _ClassVar[int]
    predicted_low: float
    predicted_high: float
    count: int
    mean_predicted: float
    observed_miss_rate: float
    def __init__(self, predicted_low: _Optional[float] = ..., predicted_high: _Optional[float] = ..., count: _Optional[int] = ..., mean_predicted: _Optional[float] = ..., observed_miss_rate: _Optional[float] = ...) -> None: ...

class AdmissionStats(_message.Message):
    __slots__ = ("model_name", "model_version", "priority", "admitted", "rejected_predicted", "expired_queued", "met", "missed", "cancelled", "brier", "brier_count", "reliability")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ADMITTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_PREDICTED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_QUEUED_FIELD_NUMBER: _ClassVar[int]
    MET_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    BRIER_FIELD_NUMBER: _ClassVar[int]
    BRIER_COUNT_FIELD_NUMBER: _ClassVar[int]
    RELIABILITY_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    priority: int
    admitted: int
    rejected_predicted: int
    expired_queued: int
    met: int
    missed: int
    cancelled: int
    brier: float
    brier_count: int
    reliability: _containers.RepeatedCompositeFieldContainer[ReliabilityBin]
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., priority: _Optional[int] = ..., admitted: _Optional[int] = ..., rejected_predicted: _Optional[int] = ..., expired_queued: _Optional[int] = ..., met: _Optional[int] = ..., missed: _Optional[int] = ..., cancelled: _Optional[int] = ..., brier: _Optional[float] = ..., brier_count: _Optional[int] = ..., reliability: _Optional[_Iterable[_Union[ReliabilityBin, _Mapping]]] = ...) -> None: ...

class GetAdmissionStatsResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: _containers.RepeatedCompositeFieldContainer[AdmissionStats]
    def __init__(self, stats: _Optional[_Iterable[_Union[AdmissionStats, _Mapping]]] = ...) -> None: ...
