"""Scheduler settings (env prefix MLOS_SCHEDULER_)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from mlos_common.config import ServiceSettings


class SchedulerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MLOS_SCHEDULER_")

    grpc_port: int = 8001  # Triton's ports, so existing clients and dashboards just work
    metrics_port: int = 8002
    http_port: int = Field(8080, description="KServe v2 REST port (MLServer's); 0 = any free, -1 = off.")
    registry_addr: str = Field("127.0.0.1:8101", description="Registry (model metadata).")
    registry_watch: bool = Field(
        True,
        description="Follow the registry's WatchModels stream into an in-memory model view: lookups of known "
        "models cost no RPC, new registrations, deletions and alias moves take effect live. false = a "
        "GetModel per lookup of a model not loaded.",
    )
    executor_addrs: str = Field("127.0.0.1:8201", description="Comma-separated executors.")
    max_queue_size: int = Field(1024, description="Pending requests per model before RESOURCE_EXHAUSTED.")
    execute_timeout_s: float = Field(60.0, description="Executor call limit when the client sets no deadline.")
    peer_check_interval_s: float = Field(1.0, description="How often peer health is checked.")
    breaker_failures: int = Field(
        3, ge=1, description="Transport failures in a row that open an executor's circuit breaker (no work sent to it)."
    )
    breaker_open_s: float = Field(
        2.0, gt=0, description="How long an open breaker waits before one probe (a Status call) may close it."
    )
    batch_slots: int = Field(
        1,
        description="Batches of one model in flight at once per executor. One lets requests gather into "
        "bigger batches while the runtime is busy; raise it for executors with several devices.",
    )

    policy: Literal["deadline", "fifo"] = Field(
        "deadline",
        description="deadline: queues ordered by priority then earliest deadline, misses predicted and refused "
        "at admission; fifo: arrival order, no prediction (the naive baseline the SLO benchmark compares with).",
    )
    preset: Literal["low-latency", "balanced", "throughput"] = Field(
        "balanced",
        description="Batching window preset: low-latency halves seed 004's windows, throughput doubles them.",
    )
    window_low_us: float = Field(0.0, ge=0, description="Batching window at low queue depth; 0 = the preset's.")
    window_medium_us: float = Field(0.0, ge=0, description="Window at medium queue depth; 0 = the preset's.")
    window_high_us: float = Field(0.0, ge=0, description="Window at high queue depth; 0 = the preset's.")
    fast_path: bool = Field(
        True,
        description="An idle model's lone request is dispatched at once. false: it waits the batching window like "
        "any partial batch (only to measure what the fast path is worth: make bench-modes).",
    )
    predict: bool = Field(
        True, description="Predict deadline misses and refuse requests predicted to miss (policy deadline only)."
    )
    miss_threshold: str = Field(
        "0.05,0.5",
        description="Refuse a request (not best-effort) whose predicted miss probability exceeds this: one value, "
        "or one per priority level from 1 (the last applies to every lower level). The default keeps the top "
        "level strict (what is admitted is meant to be kept) and admits lower levels while a hit is likelier "
        "than a miss.",
    )
    return_margin_ms: float = Field(
        2.0,
        ge=0,
        description="The scheduler plans every answer to leave this long before the request's deadline: the "
        "time the answer still needs to reach the client (serialisation, the wire, the client's own loop).",
    )
    priority_levels: int = Field(3, ge=1, le=64, description="Priority levels of a model whose config sets none.")
    aging_ms: float = Field(
        100.0,
        gt=0,
        description="Starvation guard: one priority level is worth aging_ms of deadline in the queue order, so a "
        "lower priority goes first once it is due that much sooner (see the README).",
    )
    predictor_addr: str = Field(
        "",
        description="Predictor: latency profiles and failure/threat scores come from it, request telemetry "
        "goes to it; empty = none (no telemetry, no score-driven decisions).",
    )
    rate_window_s: float = Field(10.0, gt=0, description="Window of the requests-per-model samples (workload model).")
    client_window_s: float = Field(0.5, gt=0, description="Window of the per-client samples (threat model).")
    max_tracked_clients: int = Field(
        1024, ge=1, description="Clients counted per window; the least recently seen is dropped beyond it."
    )
    scores_interval_ms: int = Field(500, ge=10, description="How often the predictor's failure and threat scores are polled.")
    scores_stale_intervals: float = Field(
        4.0, ge=1, description="A score not confirmed by the predictor for this many poll intervals is not acted on."
    )
    scores_max_age_s: float = Field(
        60.0, gt=0, description="A score computed from telemetry older than this is not acted on."
    )
    failure_avoid_probability: float = Field(
        0.5, gt=0, le=1,
        description="Executors whose failure probability reaches this get no work while one that does not can serve.",
    )
    threat_block_score: float = Field(
        0.8, gt=0, le=1, description="Clients whose threat score reaches this are refused (threat_action block)."
    )
    threat_exempt_loopback: bool = Field(
        True,
        description="Loopback peers without x-mlos-client (the host's own CLI, benchmarks, tests) are scored "
        "but never refused.",
    )
    threat_action: Literal["block", "off"] = Field(
        "block", description="block: refuse flagged clients (RESOURCE_EXHAUSTED for rate, else PERMISSION_DENIED); "
        "off: only count what would have been refused.",
    )

    startup_models: str = Field(
        "",
        description="Comma-separated models the scheduler loads at start; ServerReady and health stay "
        "false until every one is loaded (Triton's strict readiness).",
    )

    heavy_batch_ms: float = Field(
        10.0,
        description="A model whose batches take longer than this on average may have as many batches "
        "in flight as its executors have execution slots (light models keep batch_slots).",
    )
    executor_link: str = Field(
        "auto",
        pattern="^(auto|grpc)$",
        description="auto: work goes over a co-located executor's Unix link (3-5x less CPU per hop), else "
        "its gRPC Execute stream; grpc: always the gRPC stream.",
    )

    executor_shm: Literal["auto", "off"] = Field(
        "auto",
        description="auto: tensors to and from an executor on this host travel through shared memory "
        "(proved at link set-up; the message carries descriptors); off: always in the message.",
    )
    executor_shm_min_bytes: int = Field(64 << 10, ge=0, description="Smaller tensors stay in the message.")
    executor_shm_arena_bytes: int = Field(
        256 << 20, ge=1 << 20, description="Shared memory arena per executor link (reserved as used); full = inline."
    )

    workers: int = Field(
        1,
        ge=1,
        description="Scheduler worker processes behind the same gRPC and REST ports (SO_REUSEPORT). "
        "1 = one process, one asyncio loop (the default; best on hosts with few cores, where the client "
        "and the executor need the other cores). Raise it on a bigger host once the scheduler's loop is "
        "the bottleneck (a scheduler process near 100 % of one core); see the README's 'Several "
        "scheduler workers'.",
    )
    worker_restart_limit: int = Field(
        5, ge=0, description="Workers restarted after an unexpected exit, in all, before the supervisor gives up."
    )
    worker_ready_timeout_s: float = Field(
        120.0, description="How long a worker may take to listen and answer SERVING (start-up models loaded)."
    )
    reuse_port: bool = Field(
        False,
        description="Bind the gRPC and REST ports with SO_REUSEPORT. Set by the supervisor for its "
        "workers only (it first proves the ports free without it); not meant to be set by hand.",
    )
    worker_index: int = Field(-1, description="This worker's number, set by the supervisor; -1 = not a worker.")

    @field_validator("miss_threshold")
    @classmethod
    def _thresholds(cls, text: str) -> str:
        parse_thresholds(text)
        return text

    def miss_thresholds(self) -> tuple[float, ...]:
        return parse_thresholds(self.miss_threshold)

    def executor_list(self) -> list[str]:
        return [a.strip() for a in self.executor_addrs.split(",") if a.strip()]


def parse_thresholds(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"miss_threshold must be numbers separated by commas, got {text!r}") from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise ValueError(f"miss_threshold values must be in (0, 1], got {text!r}")
    return values
