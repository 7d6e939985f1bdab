"""Telemetry messages as the suite sends them, stamped in the recent past (the predictor refuses the future)."""

from __future__ import annotations

import time

from mlos.predictor.v1 import predictor_pb2 as pb


def base_ms(hours_ago: float = 2.0) -> int:
    """A start time `hours_ago` before now, in ms (telemetry times must not be in the future)."""
    return time.time_ns() // 1_000_000 - int(hours_ago * 3_600_000)


def rate(t_ms: int, requests: int, model: str = "m", window_s: float = 60.0) -> pb.RateSample:
    return pb.RateSample(model_name=model, unix_ms=t_ms, window_s=window_s, requests=requests)


def health(t_ms: int, executor: str = "e0", window_s: float = 5.0, **fields) -> pb.HealthSample:
    values = dict(executions=100, latency_drift=1.0, rss_bytes=200 << 20, memory_budget_bytes=1 << 30, uptime_s=600.0)
    values.update(fields)
    return pb.HealthSample(executor_id=executor, unix_ms=t_ms, window_s=window_s, **values)


def client(t_ms: int, name: str = "c", window_s: float = 10.0, **fields) -> pb.ClientSample:
    values = dict(requests=100, bytes_mean=2000.0, bytes_max=4000.0, value_absmax=5.0, values_sampled=1000)
    values.update(fields)
    return pb.ClientSample(client=name, unix_ms=t_ms, window_s=window_s, **values)


def memory(t_ms: int, model: str = "m", rss_mb: float = 40.0, **fields) -> pb.MemorySample:
    values = dict(model_version=1, executor_id="e0", file_bytes=8 << 20, parameters=2_000_000, nodes=50,
                  input_bytes_per_item=4096, output_bytes_per_item=1024, batch_size=4)
    values.update(fields)
    return pb.MemorySample(model_name=model, unix_ms=t_ms, rss_delta_bytes=int(rss_mb * (1 << 20)), **values)


def record(t_ms: int, ms: float, model: str = "m", batch: int = 1, executor: str = "e0") -> pb.ExecutionRecord:
    return pb.ExecutionRecord(model_name=model, model_version=1, batch_size=batch, compute_ns=int(ms * 1e6),
                              executor_id=executor, unix_ms=t_ms)
