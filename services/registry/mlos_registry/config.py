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
    max_artifact_bytes: int = Field(
        2 * GIB, description="Largest model RegisterModel and UploadModel accept (a folder: all its files together)."
    )
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

    hf_hub_cache: Path | None = Field(
        None,
        description="Hugging Face cache where hf/org/name[@rev] references are looked up (never downloaded); "
        "unset = huggingface_hub's default (HF_HUB_CACHE, else $HF_HOME/hub).",
    )
    convert_timeout_s: float = Field(
        900.0, gt=0, description="Wall-clock limit of one SafeTensors/PyTorch -> ONNX conversion (its child is killed)."
    )
    convert_max_memory_bytes: int = Field(
        8 * GIB, ge=64 * 1024 * 1024, description="Address-space limit (RLIMIT_AS) of the conversion child process."
    )
    convert_allow_pickle: bool = Field(
        False, description="Accept plain-pickle (legacy) PyTorch checkpoints; they still load with weights_only=True."
    )
    convert_opset: int = Field(17, ge=14, le=21, description="ONNX opset of converted models.")
    convert_threads: int = Field(2, ge=1, description="torch threads of the conversion child.")

    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    def resolved_hf_cache_dir(self) -> Path:
        if self.hf_hub_cache is not None:
            return self.hf_hub_cache.expanduser().resolve()
        from mlos_registry.hf_cache import default_cache_dir

        return default_cache_dir()
