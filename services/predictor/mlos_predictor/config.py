"""Predictor settings. Env: MLOS_PREDICTOR_<FIELD> (e.g. MLOS_PREDICTOR_WINDOW)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from mlos_common.config import ServiceSettings
from mlos_predictor.kinds import KINDS


class PredictorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MLOS_PREDICTOR_")

    grpc_port: int = Field(8301, description="gRPC port; 0 picks a free one (tests).")
    metrics_port: int = Field(8302, description="Prometheus /metrics HTTP port; 0 = any free, -1 = off.")
    http_port: int = Field(
        9005, ge=-1, description="The seed ML daemon's HTTP API (/api/ml/...); 0 = any free port, -1 = off."
    )
    window: int = Field(
        4096, ge=1, description="Executions kept per (model, version) for the latency percentiles."
    )
    max_models: int = Field(
        10000, ge=1, description="Most (model, version) series tracked; records for new ones beyond it are rejected."
    )
    max_batch: int = Field(1000, ge=1, description="Most rows in one PredictBatch (or HTTP batch).")
    cache_capacity: int = Field(10000, ge=1, description="Most cached results per kind (LRU beyond it).")
    cache_ttl_ms: dict[str, float] = Field(
        default_factory=dict,
        description='Per-kind result cache TTL overrides, JSON (e.g. {"threat": 250}); 0 = no caching for that kind.'
        " Defaults: the kinds' (workload 100, threat 500, failure 1000, memory 50, latency 50).",
    )
    metrics_window: int = Field(1024, ge=1, description="Recent calls per kind the latency percentiles are computed over.")

    @field_validator("cache_ttl_ms")
    @classmethod
    def _known_kinds(cls, ttl_ms: dict[str, float]) -> dict[str, float]:
        for kind, ms in ttl_ms.items():
            if kind not in KINDS:
                raise ValueError(f"cache_ttl_ms: unknown kind {kind!r}; known kinds: {', '.join(KINDS)}")
            if not ms >= 0:
                raise ValueError(f"cache_ttl_ms[{kind!r}] must be >= 0 ms, got {ms}")
        return ttl_ms

    # ---- the learning loop (books of labelled rows, training, registry) ----
    window_rows: int = Field(20000, ge=10, description="Labelled rows kept per kind (oldest dropped first).")
    max_entities: int = Field(
        10000, ge=1, description="Models, executors or clients followed per kind; samples of new ones beyond it are rejected."
    )
    failure_horizon_s: float = Field(
        30.0, gt=0, le=3600, description="A failure row is positive if the executor fails or degrades within this."
    )
    threat_horizon_s: float = Field(
        60.0, gt=0, le=3600, description="A threat row's proxy label looks this far ahead for misbehaviour."
    )
    max_clock_skew_s: float = Field(
        300.0, ge=0, description="Telemetry stamped further than this in the future is rejected."
    )
    registry_addr: str = Field(
        "", description="Registry that keeps the learned models (mlos-predictor-<kind>); empty = served, not registered."
    )
    data_dir: Path = Field(
        Path("~/.mlos/predictor"), description="Folder for the learned models' ONNX files (the registry reads them)."
    )
    train_interval_s: float = Field(
        300.0, ge=0, description="Seconds between scheduled trainings; 0 = only on a Train call."
    )
    min_train_rows: int = Field(200, ge=10, description="Labelled rows a kind needs before it is trained.")
    min_new_rows: int = Field(100, ge=1, description="New labelled rows that make a kind due for scheduled training.")
    train_timeout_s: float = Field(
        300.0, gt=0, description="Seconds one kind's training may take in the training process (its start-up included); "
        "then the process is killed and the training reported failed.",
    )
    train_memory_limit_mb: int = Field(
        2048, ge=0, description="Memory the training process may map beyond its libraries (RLIMIT_AS); 0 = no limit.",
    )
    train_kinds: str = Field(
        ",".join(KINDS), description="Kinds the schedule trains, comma-separated (the Train RPC trains any kind)."
    )

    @field_validator("train_kinds")
    @classmethod
    def _trainable(cls, text: str) -> str:
        unknown = [k for k in text.split(",") if k.strip() and k.strip() not in KINDS]
        if unknown:
            raise ValueError(f"train_kinds: unknown kind(s) {', '.join(unknown)}; known kinds: {', '.join(KINDS)}")
        return text

    def scheduled_kinds(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.train_kinds.split(",") if k.strip())

    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()
