"""Settings of the registry service (env prefix MLOS_REGISTRY_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mlos_common.config import ServiceSettings

GIB = 1024 * 1024 * 1024


class RegistrySettings(ServiceSettings):
    """Env: MLOS_REGISTRY_<FIELD>, e.g. MLOS_REGISTRY_DATA_DIR=/var/lib/mlos/registry."""

    model_config = SettingsConfigDict(env_prefix="MLOS_REGISTRY_")

    grpc_port: int = Field(8101, description="gRPC port; 0 picks a free one (tests).")
    metrics_port: int = Field(8102, description="Prometheus /metrics HTTP port; 0 = any free, -1 = off.")
    data_dir: Path = Field(
        Path("~/.mlos/registry"), description="Folder holding the SQLite metadata and the artifact blobs."
    )
    max_artifact_bytes: int = Field(2 * GIB, description="Largest model file RegisterModel accepts.")
    default_max_batch_size: int = Field(
        8, description="max_batch_size given to models whose every input and output has a variable first dim."
    )
    changes_kept: int = Field(
        10_000, ge=1, description="Registry changes kept for WatchModels replay; older revisions answer OUT_OF_RANGE."
    )
    verify_blobs_on_start: bool = Field(
        True,
        description="Re-hash every blob at start-up (reads the whole store once); off = check presence and size only.",
    )
    allowed_roots: list[Path] = Field(
        default_factory=list,
        description="If set, RegisterModel paths must resolve under one of these folders; empty = any readable path.",
    )

    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()
