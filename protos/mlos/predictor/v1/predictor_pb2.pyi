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
    __slots__ = ("records", "rates", "clients", "health", "memory")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    RATES_FIELD_NUMBER: _ClassVar[int]
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[ExecutionRecord]
    rates: _containers.RepeatedCompositeFieldContainer[RateSample]
    clients: _containers.RepeatedCompositeFieldContainer[ClientSample]
    health: _containers.RepeatedCompositeFieldContainer[HealthSample]
    memory: _containers.RepeatedCompositeFieldContainer[MemorySample]
    def __init__(self, records: _Optional[_Iterable[_Union[ExecutionRecord, _Mapping]]] = ..., rates: _Optional[_Iterable[_Union[RateSample, _Mapping]]] = ..., clients: _Optional[_Iterable[_Union[ClientSample, _Mapping]]] = ..., health: _Optional[_Iterable[_Union[HealthSample, _Mapping]]] = ..., memory: _Optional[_Iterable[_Union[MemorySample, _Mapping]]] = ...) -> None: ...

class RateSample(_message.Message):
    __slots__ = ("model_name", "unix_ms", "window_s", "requests")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    unix_ms: int
    window_s: float
    requests: int
    def __init__(self, model_name: _Optional[str] = ..., unix_ms: _Optional[int] = ..., window_s: _Optional[float] = ..., requests: _Optional[int] = ...) -> None: ...

class ClientSample(_message.Message):
    __slots__ = ("client", "unix_ms", "window_s", "requests", "malformed", "shape_errors", "bytes_mean", "bytes_max", "value_absmax", "values_sampled", "nonfinite")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    MALFORMED_FIELD_NUMBER: _ClassVar[int]
    SHAPE_ERRORS_FIELD_NUMBER: _ClassVar[int]
    BYTES_MEAN_FIELD_NUMBER: _ClassVar[int]
    BYTES_MAX_FIELD_NUMBER: _ClassVar[int]
    VALUE_ABSMAX_FIELD_NUMBER: _ClassVar[int]
    VALUES_SAMPLED_FIELD_NUMBER: _ClassVar[int]
    NONFINITE_FIELD_NUMBER: _ClassVar[int]
    client: str
    unix_ms: int
    window_s: float
    requests: int
    malformed: int
    shape_errors: int
    bytes_mean: float
    bytes_max: float
    value_absmax: float
    values_sampled: int
    nonfinite: int
    def __init__(self, client: _Optional[str] = ..., unix_ms: _Optional[int] = ..., window_s: _Optional[float] = ..., requests: _Optional[int] = ..., malformed: _Optional[int] = ..., shape_errors: _Optional[int] = ..., bytes_mean: _Optional[float] = ..., bytes_max: _Optional[float] = ..., value_absmax: _Optional[float] = ..., values_sampled: _Optional[int] = ..., nonfinite: _Optional[int] = ...) -> None: ...

class HealthSample(_message.Message):
    __slots__ = ("executor_id", "unix_ms", "window_s", "executions", "errors", "latency_drift", "rss_bytes", "memory_budget_bytes", "uptime_s", "loaded_models")
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_DRIFT_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    LOADED_MODELS_FIELD_NUMBER: _ClassVar[int]
    executor_id: str
    unix_ms: int
    window_s: float
    executions: int
    errors: int
    latency_drift: float
    rss_bytes: int
    memory_budget_bytes: int
    uptime_s: float
    loaded_models: int
    def __init__(self, executor_id: _Optional[str] = ..., unix_ms: _Optional[int] = ..., window_s: _Optional[float] = ..., executions: _Optional[int] = ..., errors: _Optional[int] = ..., latency_drift: _Optional[float] = ..., rss_bytes: _Optional[int] = ..., memory_budget_bytes: _Optional[int] = ..., uptime_s: _Optional[float] = ..., loaded_models: _Optional[int] = ...) -> None: ...

class MemorySample(_message.Message):
    __slots__ = ("model_name", "model_version", "executor_id", "unix_ms", "file_bytes", "parameters", "nodes", "input_bytes_per_item", "output_bytes_per_item", "batch_size", "rss_delta_bytes")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    FILE_BYTES_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    INPUT_BYTES_PER_ITEM_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BYTES_PER_ITEM_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    RSS_DELTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    executor_id: str
    unix_ms: int
    file_bytes: int
    parameters: int
    nodes: int
    input_bytes_per_item: int
    output_bytes_per_item: int
    batch_size: int
    rss_delta_bytes: int
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., executor_id: _Optional[str] = ..., unix_ms: _Optional[int] = ..., file_bytes: _Optional[int] = ..., parameters: _Optional[int] = ..., nodes: _Optional[int] = ..., input_bytes_per_item: _Optional[int] = ..., output_bytes_per_item: _Optional[int] = ..., batch_size: _Optional[int] = ..., rss_delta_bytes: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("model_name", "model_version", "batch_size", "count", "mean_ms", "std_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms", "expected_ms")
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
    EXPECTED_MS_FIELD_NUMBER: _ClassVar[int]
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
    expected_ms: float
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., batch_size: _Optional[int] = ..., count: _Optional[int] = ..., mean_ms: _Optional[float] = ..., std_ms: _Optional[float] = ..., p50_ms: _Optional[float] = ..., p95_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., max_ms: _Optional[float] = ..., expected_ms: _Optional[float] = ...) -> None: ...

class LatencyProfiles(_message.Message):
    __slots__ = ("profiles", "snapshot")
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    profiles: _containers.RepeatedCompositeFieldContainer[LatencyProfile]
    snapshot: bool
    def __init__(self, profiles: _Optional[_Iterable[_Union[LatencyProfile, _Mapping]]] = ..., snapshot: _Optional[bool] = ...) -> None: ...

class FeatureRow(_message.Message):
    __slots__ = ("values", "named")
    class NamedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    NAMED_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    named: _containers.ScalarMap[str, float]
    def __init__(self, values: _Optional[_Iterable[float]] = ..., named: _Optional[_Mapping[str, float]] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("kind", "features", "no_cache")
    KIND_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    features: FeatureRow
    no_cache: bool
    def __init__(self, kind: _Optional[str] = ..., features: _Optional[_Union[FeatureRow, _Mapping]] = ..., no_cache: _Optional[bool] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("value", "reason", "cached", "model_version")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    value: float
    reason: str
    cached: bool
    model_version: int
    def __init__(self, value: _Optional[float] = ..., reason: _Optional[str] = ..., cached: _Optional[bool] = ..., model_version: _Optional[int] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("prediction", "latency_ms")
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    prediction: Prediction
    latency_ms: float
    def __init__(self, prediction: _Optional[_Union[Prediction, _Mapping]] = ..., latency_ms: _Optional[float] = ...) -> None: ...

class PredictBatchRequest(_message.Message):
    __slots__ = ("kind", "rows", "no_cache")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    rows: _containers.RepeatedCompositeFieldContainer[FeatureRow]
    no_cache: bool
    def __init__(self, kind: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[FeatureRow, _Mapping]]] = ..., no_cache: _Optional[bool] = ...) -> None: ...

class PredictBatchResponse(_message.Message):
    __slots__ = ("predictions", "latency_ms")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    latency_ms: float
    def __init__(self, predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ..., latency_ms: _Optional[float] = ...) -> None: ...

class GetScoresRequest(_message.Message):
    __slots__ = ("kind", "entities")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    kind: str
    entities: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[str] = ..., entities: _Optional[_Iterable[str]] = ...) -> None: ...

class EntityScore(_message.Message):
    __slots__ = ("entity", "prediction", "unix_ms", "features")
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    entity: str
    prediction: Prediction
    unix_ms: int
    features: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, entity: _Optional[str] = ..., prediction: _Optional[_Union[Prediction, _Mapping]] = ..., unix_ms: _Optional[int] = ..., features: _Optional[_Iterable[float]] = ...) -> None: ...

class GetScoresResponse(_message.Message):
    __slots__ = ("scores", "executors_needed")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    EXECUTORS_NEEDED_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[EntityScore]
    executors_needed: float
    def __init__(self, scores: _Optional[_Iterable[_Union[EntityScore, _Mapping]]] = ..., executors_needed: _Optional[float] = ...) -> None: ...

class KindMetrics(_message.Message):
    __slots__ = ("kind", "count", "cache_hits", "cache_misses", "mean_ms", "min_ms", "max_ms", "p50_ms", "p95_ms", "p99_ms")
    KIND_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    CACHE_MISSES_FIELD_NUMBER: _ClassVar[int]
    MEAN_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    count: int
    cache_hits: int
    cache_misses: int
    mean_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    def __init__(self, kind: _Optional[str] = ..., count: _Optional[int] = ..., cache_hits: _Optional[int] = ..., cache_misses: _Optional[int] = ..., mean_ms: _Optional[float] = ..., min_ms: _Optional[float] = ..., max_ms: _Optional[float] = ..., p50_ms: _Optional[float] = ..., p95_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ...) -> None: ...

class GetMetricsRequest(_message.Message):
    __slots__ = ("kind",)
    KIND_FIELD_NUMBER: _ClassVar[int]
    kind: str
    def __init__(self, kind: _Optional[str] = ...) -> None: ...

class GetMetricsResponse(_message.Message):
    __slots__ = ("metrics",)
    METRICS_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.RepeatedCompositeFieldContainer[KindMetrics]
    def __init__(self, metrics: _Optional[_Iterable[_Union[KindMetrics, _Mapping]]] = ...) -> None: ...

class ResetMetricsRequest(_message.Message):
    __slots__ = ("kind",)
    KIND_FIELD_NUMBER: _ClassVar[int]
    kind: str
    def __init__(self, kind: _Optional[str] = ...) -> None: ...

class ResetMetricsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class KindCacheStats(_message.Message):
    __slots__ = ("kind", "size", "capacity", "ttl_ms", "hits", "misses", "expired", "evicted", "hit_rate")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    EVICTED_FIELD_NUMBER: _ClassVar[int]
    HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    size: int
    capacity: int
    ttl_ms: float
    hits: int
    misses: int
    expired: int
    evicted: int
    hit_rate: float
    def __init__(self, kind: _Optional[str] = ..., size: _Optional[int] = ..., capacity: _Optional[int] = ..., ttl_ms: _Optional[float] = ..., hits: _Optional[int] = ..., misses: _Optional[int] = ..., expired: _Optional[int] = ..., evicted: _Optional[int] = ..., hit_rate: _Optional[float] = ...) -> None: ...

class CacheStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CacheStatsResponse(_message.Message):
    __slots__ = ("caches",)
    CACHES_FIELD_NUMBER: _ClassVar[int]
    caches: _containers.RepeatedCompositeFieldContainer[KindCacheStats]
    def __init__(self, caches: _Optional[_Iterable[_Union[KindCacheStats, _Mapping]]] = ...) -> None: ...

class ClearCacheRequest(_message.Message):
    __slots__ = ("kind",)
    KIND_FIELD_NUMBER: _ClassVar[int]
    kind: str
    def __init__(self, kind: _Optional[str] = ...) -> None: ...

class ClearCacheResponse(_message.Message):
    __slots__ = ("cleared",)
    CLEARED_FIELD_NUMBER: _ClassVar[int]
    cleared: int
    def __init__(self, cleared: _Optional[int] = ...) -> None: ...

class KindModelInfo(_message.Message):
    __slots__ = ("kind", "source", "registry_name", "version", "features", "unit", "estimator", "baseline", "prior", "metric", "higher_is_better", "score", "baseline_score", "training_rows", "held_out_rows", "trained_unix_ms", "rows_available")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    ESTIMATOR_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    PRIOR_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    HIGHER_IS_BETTER_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_SCORE_FIELD_NUMBER: _ClassVar[int]
    TRAINING_ROWS_FIELD_NUMBER: _ClassVar[int]
    HELD_OUT_ROWS_FIELD_NUMBER: _ClassVar[int]
    TRAINED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    ROWS_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    source: str
    registry_name: str
    version: int
    features: _containers.RepeatedScalarFieldContainer[str]
    unit: str
    estimator: str
    baseline: str
    prior: str
    metric: str
    higher_is_better: bool
    score: float
    baseline_score: float
    training_rows: int
    held_out_rows: int
    trained_unix_ms: int
    rows_available: int
    def __init__(self, kind: _Optional[str] = ..., source: _Optional[str] = ..., registry_name: _Optional[str] = ..., version: _Optional[int] = ..., features: _Optional[_Iterable[str]] = ..., unit: _Optional[str] = ..., estimator: _Optional[str] = ..., baseline: _Optional[str] = ..., prior: _Optional[str] = ..., metric: _Optional[str] = ..., higher_is_better: _Optional[bool] = ..., score: _Optional[float] = ..., baseline_score: _Optional[float] = ..., training_rows: _Optional[int] = ..., held_out_rows: _Optional[int] = ..., trained_unix_ms: _Optional[int] = ..., rows_available: _Optional[int] = ...) -> None: ...

class ModelInfoRequest(_message.Message):
    __slots__ = ("kind",)
    KIND_FIELD_NUMBER: _ClassVar[int]
    kind: str
    def __init__(self, kind: _Optional[str] = ...) -> None: ...

class ModelInfoResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[KindModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[KindModelInfo, _Mapping]]] = ...) -> None: ...

class TrainRequest(_message.Message):
    __slots__ = ("kind",)
    KIND_FIELD_NUMBER: _ClassVar[int]
    kind: str
    def __init__(self, kind: _Optional[str] = ...) -> None: ...

class TrainOutcome(_message.Message):
    __slots__ = ("kind", "replaced", "reason", "candidate_score", "model")
    KIND_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_SCORE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    kind: str
    replaced: bool
    reason: str
    candidate_score: float
    model: KindModelInfo
    def __init__(self, kind: _Optional[str] = ..., replaced: _Optional[bool] = ..., reason: _Optional[str] = ..., candidate_score: _Optional[float] = ..., model: _Optional[_Union[KindModelInfo, _Mapping]] = ...) -> None: ...

class TrainResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[TrainOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[TrainOutcome, _Mapping]]] = ...) -> None: ...
