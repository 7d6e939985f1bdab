"""Telemetry samples the learning loop reads (besides execution records), and what makes one absurd.

The dataclasses mirror the TelemetryBatch messages (convert.py builds them); `problem(sample,
now_ms)` says why a sample must not be trained on, or None. A sample is refused when a field
cannot be a measurement: an empty name, a time at or before the epoch or more than
`max_skew_ms` after `now_ms` (the predictor's clock), a window <= 0 or over an hour, NaN or
infinite where a number is measured, a part larger than its whole (errors > executions,
malformed > requests, non-finite > values sampled), or a rate beyond 10 million/s.

One exception is deliberate: `ClientSample.value_absmax` may be NaN or infinite, because a
client flooding NaN or infinities makes a naive max over its values exactly that; the threat
book reads it as "non-finite values seen" (the largest finite log value), not as a broken sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

HOUR_MS = 3_600_000
MAX_RATE_PER_S = 1e7
MAX_BYTES = 1 << 50  # 1 PiB: beyond it a byte count is bogus
MAX_COUNT = 1 << 53  # beyond it a uint64 counter is bogus (and not exact as a float)


@dataclass(frozen=True, slots=True)
class RateSample:
    model_name: str
    unix_ms: int  # end of the window
    window_s: float
    requests: int


@dataclass(frozen=True, slots=True)
class ClientSample:
    client: str
    unix_ms: int
    window_s: float
    requests: int
    malformed: int = 0
    shape_errors: int = 0
    bytes_mean: float = 0.0
    bytes_max: float = 0.0
    value_absmax: float = 0.0
    values_sampled: int = 0
    nonfinite: int = 0


@dataclass(frozen=True, slots=True)
class HealthSample:
    executor_id: str
    unix_ms: int
    window_s: float
    executions: int = 0
    errors: int = 0
    latency_drift: float = 1.0
    rss_bytes: int = 0
    memory_budget_bytes: int = 0
    uptime_s: float = 0.0
    loaded_models: int = 0


@dataclass(frozen=True, slots=True)
class MemorySample:
    model_name: str
    model_version: int
    executor_id: str
    unix_ms: int
    file_bytes: int
    parameters: int
    nodes: int
    input_bytes_per_item: int
    output_bytes_per_item: int
    batch_size: int
    rss_delta_bytes: int


Sample = RateSample | ClientSample | HealthSample | MemorySample


def _time_problem(unix_ms: int, now_ms: int, max_skew_ms: int) -> str | None:
    if unix_ms <= 0:
        return f"unix_ms {unix_ms} is not a time (must be ms since the epoch)"
    if unix_ms > now_ms + max_skew_ms:
        return f"unix_ms {unix_ms} is {(unix_ms - now_ms) / 1000:.0f} s in the future"
    return None


def _window_problem(window_s: float) -> str | None:
    if not math.isfinite(window_s) or window_s <= 0 or window_s > 3600:
        return f"window_s {window_s} is not in (0, 3600]"
    return None


def _finite(**values: float) -> str | None:
    for name, v in values.items():
        if not math.isfinite(v) or v < 0:
            return f"{name} {v} is not a finite non-negative number"
    return None


def _counts(**values: int) -> str | None:
    for name, v in values.items():
        if v < 0 or v > MAX_COUNT:
            return f"{name} {v} is not a plausible count"
    return None


def _part(part_name: str, part: int, whole_name: str, whole: int) -> str | None:
    return f"{part_name} {part} > {whole_name} {whole}" if part > whole else None


def _first(*checks: Callable[[], str | None]) -> str | None:
    """The first problem found, checking in order (later checks may assume earlier ones passed)."""
    for check in checks:
        found = check()
        if found is not None:
            return found
    return None


def _rate_ok(count: int, window_s: float, what: str) -> str | None:
    per_s = count / window_s
    return None if per_s <= MAX_RATE_PER_S else f"{count} {what} in {window_s} s is over {MAX_RATE_PER_S:g}/s"


def problem(sample: Sample, now_ms: int, max_skew_ms: int = 300_000) -> str | None:
    """Why `sample` is absurd (never to be trained on), or None; see the module docstring."""
    if isinstance(sample, RateSample):
        r = sample
        return _first(
            lambda: None if r.model_name else "empty model_name",
            lambda: _time_problem(r.unix_ms, now_ms, max_skew_ms),
            lambda: _window_problem(r.window_s),
            lambda: _counts(requests=r.requests),
            lambda: _rate_ok(r.requests, r.window_s, "requests"),
        )
    if isinstance(sample, ClientSample):
        c = sample
        return _first(
            lambda: None if c.client else "empty client",
            lambda: _time_problem(c.unix_ms, now_ms, max_skew_ms),
            lambda: _window_problem(c.window_s),
            lambda: _counts(requests=c.requests, values_sampled=c.values_sampled),
            lambda: None if c.requests > 0 else "requests 0: a client window without requests says nothing",
            lambda: _rate_ok(c.requests, c.window_s, "requests"),
            lambda: _part("malformed", c.malformed, "requests", c.requests),
            lambda: _part("shape_errors", c.shape_errors, "malformed", c.malformed),
            lambda: _part("nonfinite", c.nonfinite, "values_sampled", c.values_sampled),
            lambda: _finite(bytes_mean=c.bytes_mean, bytes_max=c.bytes_max),
            lambda: None if c.bytes_max <= MAX_BYTES else f"bytes_max {c.bytes_max:g} is over 1 PiB",
            lambda: None if c.bytes_mean <= c.bytes_max * (1 + 1e-9) + 1e-9
            else f"bytes_mean {c.bytes_mean:g} > bytes_max {c.bytes_max:g}",
            lambda: None if not c.value_absmax < 0 else f"value_absmax {c.value_absmax} is negative",
        )
    if isinstance(sample, HealthSample):
        h = sample
        return _first(
            lambda: None if h.executor_id else "empty executor_id",
            lambda: _time_problem(h.unix_ms, now_ms, max_skew_ms),
            lambda: _window_problem(h.window_s),
            lambda: _counts(executions=h.executions, errors=h.errors),
            lambda: _part("errors", h.errors, "executions", h.executions),
            lambda: _finite(latency_drift=h.latency_drift, uptime_s=h.uptime_s),
            lambda: None if h.rss_bytes <= MAX_BYTES and h.memory_budget_bytes <= MAX_BYTES
            else "rss_bytes or memory_budget_bytes is over 1 PiB",
            lambda: _rate_ok(h.executions, h.window_s, "executions"),
        )
    m = sample
    return _first(
        lambda: None if m.model_name else "empty model_name",
        lambda: _time_problem(m.unix_ms, now_ms, max_skew_ms),
        lambda: _counts(parameters=m.parameters, nodes=m.nodes),
        lambda: None if m.model_version >= 0 else f"model_version {m.model_version} is negative",
        lambda: None if m.batch_size >= 1 else f"batch_size {m.batch_size} < 1",
        lambda: None if max(m.file_bytes, m.input_bytes_per_item, m.output_bytes_per_item) <= MAX_BYTES
        else "a byte count is over 1 PiB",
        lambda: None if abs(m.rss_delta_bytes) <= MAX_BYTES else f"rss_delta_bytes {m.rss_delta_bytes} is over 1 PiB",
    )
