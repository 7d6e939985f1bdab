"""Settings shared by every service. Each service subclasses with its own env prefix."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class ServiceSettings(BaseSettings):
    """Common knobs. Env: MLOS_<SERVICE>_<FIELD> (e.g. MLOS_REGISTRY_GRPC_PORT)."""

    host: str = Field("127.0.0.1", description="Address the gRPC and metrics servers bind to.")
    grpc_port: int = Field(0, description="gRPC port; 0 picks a free one (tests).")
    metrics_port: int = Field(-1, description="Prometheus /metrics HTTP port; 0 = any free, -1 = off.")
    log_level: str = Field("INFO", description="Python logging level.")
    otlp_endpoint: str = Field("", description="OTLP/gRPC collector for traces; empty = no export.")
    shutdown_grace_s: float = Field(10.0, description="How long in-flight RPCs may finish on SIGTERM.")
    max_message_bytes: int = Field(
        DEFAULT_MAX_MESSAGE_BYTES, description="Largest gRPC message accepted or sent."
    )
    max_concurrent_rpcs: int = Field(0, description="Cap on concurrent RPCs; 0 = no cap.")
