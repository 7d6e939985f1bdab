"""Executor settings (env prefix MLOS_EXECUTOR_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from mlos_common.config import ServiceSettings
from mlos_executor.threads import usable_cpus


class ExecutorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MLOS_EXECUTOR_")

    grpc_port: int = 8201
    metrics_port: int = 8202
    executor_id: str = Field("executor-0", description="Name reported in status and telemetry.")
    registry_addr: str = Field("127.0.0.1:8101", description="Registry to fetch artifacts from.")
    registry_watch: bool = Field(
        True,
        description="Follow the registry's WatchModels stream: prefetch resolves the latest version from "
        "that view, and a version deleted from the registry is unloaded here once no work is in flight.",
    )
    predictor_addr: str = Field("", description="Predictor to stream telemetry to; empty = none.")
    cache_dir: Path = Field(Path("~/.mlos/executor").expanduser(), description="Verified artifacts.")
    device: str = Field("auto", description="auto (CUDA when available), cpu or cuda.")
    intra_op_threads: int = Field(
        0,
        description="ONNX Runtime threads inside one run; 0 = the usable CPUs divided by execution_slots "
        "(at least 1), so concurrent runs rather than threads within a run fill the cores.",
    )
    execution_slots: int = Field(2, ge=1, description="Batches that may run at the same time.")
    memory_pool: bool = Field(
        False,
        description="Write ONNX outputs into buffers reused per (shape, dtype) through IOBinding instead of "
        "fresh arrays per run (pool.py); measured in bench/bench_executor.py, off by default (see README).",
    )
    memory_pool_max_mb: float = Field(256.0, gt=0, description="Bytes the output pool may keep, MB.")
    shared_weights: bool = Field(
        False,
        description="Hold identical large initializers of the loaded ONNX models once (keyed by content "
        "digest; shared_weights.py). Such sessions run without weight prepacking: less memory, slower "
        "MatMul/Gemm; off by default (see README).",
    )
    shared_weights_min_bytes: int = Field(1 << 20, ge=1, description="Initializers this large or larger are shared.")
    inline_run_us: int = Field(
        300,
        description="Work of a model whose runs average less than this (all of one message's share "
        "together) runs on the event loop, not a worker thread: the hand-off costs more. 0 = never.",
    )
    heavy_run_ms: float = Field(
        20.0,
        description="With automatic threads (intra_op_threads 0), a model whose runs average longer than "
        "this gets its session rebuilt with every usable CPU (once, in the background).",
    )
    unix_link: bool = Field(
        True,
        description="Also serve the Execute stream on an abstract Unix socket, so a scheduler on the "
        "same host pays 3-5x less CPU per hop than over gRPC; the name is in Status.link_socket.",
    )
    shm_arena_bytes: int = Field(
        256 << 20,
        ge=0,
        description="Size of the shared memory arena each co-located scheduler stream gets for outputs "
        "(memory is reserved as it is used); 0 = refuse shared memory, every tensor travels in the message.",
    )
    warmup_runs: int = Field(
        3,
        ge=0,
        description="Timed warm-up runs per batch size right after a model loads (batch 1 and its max batch "
        "size, zero-filled inputs); the timings go back in LoadModelResponse.warmup. 0 = no warm-up.",
    )
    warmup_max_s: float = Field(2.0, gt=0, description="Warm-up time per model load, at most (roughly).")
    generation_preemption: bool = Field(
        True,
        description="Generations of a model take turns by priority and deadline between token steps; "
        "false = first come, first served to the end (the naive order, for comparison).",
    )
    memory_budget_mb: float | None = Field(
        None,
        description="Memory the loaded models may take, MB (their resident growth measured at load + warm-up). "
        "A load whose predicted footprint (the predictor's memory model, else its documented prior) exceeds "
        "what is left evicts the least recently used idle models, or is refused with RESOURCE_EXHAUSTED when "
        "even that is not enough. Unset = 80 % of MemTotal; 0 = no budget; negative or more than MemTotal "
        "= a start-up error.",
    )
    memory_predict_timeout_ms: float = Field(
        200.0, gt=0, description="How long a load waits for the predictor's memory answer before the local prior."
    )
    health_interval_s: float = Field(
        1.0, ge=0, description="A HealthSample to the predictor this often (needs predictor_addr); 0 = none."
    )
    prefetch_interval_s: float = Field(
        5.0,
        ge=0,
        description="How often to ask the predictor's workload forecast (GetScores) and load + warm the "
        "registered models forecast at prefetch_min_rate or more that are not loaded here (needs "
        "predictor_addr); 0 = no prefetch.",
    )
    prefetch_min_rate: float = Field(0.5, ge=0, description="Forecast requests/s at which a model is prefetched.")
    numa_pin: bool | None = Field(
        None,
        description="Pin the inference threads to the NUMA node nearest the device (a GPU's node; for a CPU "
        "executor numa_node, else node 0). Unset = only where the host has more than one node; false = never.",
    )
    numa_node: int | None = Field(None, description="The node of a CPU executor; must exist on the host.")
    sys_root: Path = Field(
        Path("/"), description="Where /sys is read from (runtime mode, NUMA topology); tests use synthetic trees."
    )

    @field_validator("intra_op_threads")
    @classmethod
    def _threads_fit_host(cls, value: int) -> int:
        cpus = usable_cpus()
        if value < 0 or value > cpus:
            raise ValueError(f"intra_op_threads {value} must be between 0 (the rule) and this host's usable CPUs ({cpus})")
        return value
