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
