"""Predictor settings. Env: MLOS_PREDICTOR_<FIELD> (e.g. MLOS_PREDICTOR_WINDOW)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mlos_common.config import ServiceSettings


class PredictorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MLOS_PREDICTOR_")

    grpc_port: int = Field(8301, description="gRPC port; 0 picks a free one (tests).")
    metrics_port: int = Field(8302, description="Prometheus /metrics HTTP port; 0 = any free, -1 = off.")
    window: int = Field(
        4096, ge=1, description="Executions kept per (model, version) for the latency percentiles."
    )
    max_models: int = Field(
        10000, ge=1, description="Most (model, version) series tracked; records for new ones beyond it are rejected."
    )
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
