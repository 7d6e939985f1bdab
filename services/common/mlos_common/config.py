"""Settings shared by every service. Each service subclasses with its own env prefix.

The security settings (tokens, TLS files) are the same for every process of a deployment, so
their env names carry no service prefix: MLOS_AUTH_TOKENS_FILE, MLOS_TOKEN / MLOS_TOKEN_FILE,
MLOS_TLS_CERT, MLOS_TLS_KEY, MLOS_TLS_CA (see mlos_common.auth and mlos_common.tls)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _shared(name: str, description: str) -> Any:
    """A field read from the unprefixed env name MLOS_<NAME> in every service (set by `name` in code:
    populate_by_name), never from a bare NAME such as TOKEN."""
    return Field(None, validation_alias=f"MLOS_{name.upper()}", description=description)


class ServiceSettings(BaseSettings):
    """Common knobs. Env: MLOS_<SERVICE>_<FIELD> (e.g. MLOS_REGISTRY_GRPC_PORT)."""

    model_config = SettingsConfigDict(populate_by_name=True)

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

    auth_tokens_file: Path | None = _shared(
        "auth_tokens_file",
        "Tokens this server accepts, one `<token or sha256:hex> <role>[,<role>] [name]` a line; "
        "unset = no auth (every RPC open).",
    )
    token: SecretStr | None = _shared("token", "Bearer token sent to peers.")
    token_file: Path | None = _shared("token_file", "File holding the bearer token sent to peers (when `token` is unset).")
    tls_cert: Path | None = _shared("tls_cert", "PEM certificate (chain) served, and presented to peers.")
    tls_key: Path | None = _shared("tls_key", "PEM private key of tls_cert.")
    tls_ca: Path | None = _shared(
        "tls_ca", "PEM CA bundle: servers require client certificates it signed; clients verify servers by it."
    )
