from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExecutionRecord(_message.Message):
    __slots__ = ("model_name", "model_version", "batch_size", "compute_ns", "failed", "executor_id", "unix_ms")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_NS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    batch_size: int
    compute_ns: int
    failed: bool
    executor_id: str
    unix_ms: int
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., batch_size: _Optional[int] = ..., compute_ns: _Optional[int] = ..., failed: _Optional[bool] = ..., executor_id: _Optional[str] = ..., unix_ms: _Optional[int] = ...) -> None: ...

class TelemetryBatch(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[ExecutionRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[ExecutionRecord, _Mapping]]] = ...) -> None: ...

class TelemetryAck(_message.Message):
    __slots__ = ("accepted", "rejected")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    rejected: int
    def __init__(self, accepted: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class LatencySummaryRequest(_message.Message):
    __slots__ = ("model_name", "model_version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ...) -> None: ...

class LatencySummary(_message.Message):
    __slots__ = ("model_name", "model_version", "count", "window", "p50_ms", "p95_ms", "p99_ms", "mean_batch_size", "failures")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    MEAN_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    count: int
    window: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_batch_size: float
    failures: int
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., count: _Optional[int] = ..., window: _Optional[int] = ..., p50_ms: _Optional[float] = ..., p95_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., mean_batch_size: _Optional[float] = ..., failures: _Optional[int] = ...) -> None: ...

class LatencySummaryResponse(_message.Message):
    __slots__ = ("summaries",)
    SUMMARIES_FIELD_NUMBER: _ClassVar[int]
    summaries: _containers.RepeatedCompositeFieldContainer[LatencySummary]
    def __init__(self, summaries: _Optional[_Iterable[_Union[LatencySummary, _Mapping]]] = ...) -> None: ...

class WatchLatencyProfilesRequest(_message.Message):
    __slots__ = ("model_name", "interval_ms")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    interval_ms: int
    def __init__(self, model_name: _Optional[str] = ..., interval_ms: _Optional[int] = ...) -> None: ...

class LatencyProfile(_message.Message):
    __slots__ = ("model_name", "model_version", "batch_size", "count", "mean_ms", "std_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEAN_MS_FIELD_NUMBER: _ClassVar[int]
    STD_MS_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    batch_size: int
    count: int
    mean_ms: float
    std_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., batch_size: _Optional[int] = ..., count: _Optional[int] = ..., mean_ms: _Optional[float] = ..., std_ms: _Optional[float] = ..., p50_ms: _Optional[float] = ..., p95_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., max_ms: _Optional[float] = ...) -> None: ...

class LatencyProfiles(_message.Message):
    __slots__ = ("profiles", "snapshot")
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    profiles: _containers.RepeatedCompositeFieldContainer[LatencyProfile]
    snapshot: bool
    def __init__(self, profiles: _Optional[_Iterable[_Union[LatencyProfile, _Mapping]]] = ..., snapshot: _Optional[bool] = ...) -> None: ...
