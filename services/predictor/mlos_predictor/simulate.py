"""Simulated telemetry with a known generating process, for evaluating the learned models.

`simulate(seed, scale)` emits the TelemetryBatch messages the suite emits (execution records,
rate, client, health and memory samples), time-ordered, plus what only a simulator knows: which
client windows were anomalous (`Simulation.anomalous`). Evaluation feeds the messages through
the same conversion, books and trainer as ReportTelemetry, so nothing is shortcut. Times start
on 2024-01-01 UTC. `scale` multiplies the number of entities and samples (1.0 for evaluation).

The processes (numbers are per entity; every draw comes from one seeded numpy Generator):
- workload: per model, requests/s = base x (1 + amp sin(2 pi (hour - peak)/24)) x a weekday
  factor, per 5-minute window, with log-normal noise (sigma 0.15) and Poisson counts.
- memory: a load's RSS delta = runtime overhead (6-20 MB) + weights (file MB x 1.05-1.3) +
  arena ~ nodes x 20 KB + batch x (input + output per item) x 2-4 + 3 % noise.
- latency: per model, ms = (fixed + per item x batch) x contention (1 + 0.15 x executions the
  executor finished in the last 100 ms) x a slow per-model drift (mean-reverting, +-40 %) x a cold
  start (x1.5-3 after an idle minute) x log-normal noise (sigma 0.08).
- failure and threat: see simulate_health.py.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from mlos.predictor.v1 import predictor_pb2 as pb
from mlos_predictor.simulate_health import executors, threat_clients

START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
HOUR_MS = 3_600_000
BATCH_MESSAGES = 1000  # messages per TelemetryBatch (the streamer sends up to 1024)


@dataclass
class Simulation:
    batches: list[pb.TelemetryBatch]
    anomalous: set[tuple[str, int]] = field(default_factory=set)  # (client, unix_ms) of anomalous windows
    counts: dict[str, int] = field(default_factory=dict)  # messages per sample type


def _n(base: int, scale: float) -> int:
    return max(2, int(round(base * scale)))


def workload(rng: np.random.Generator, scale: float) -> Iterator[pb.RateSample]:
    window_s = 300.0
    windows = _n(2880, scale)  # 10 days at scale 1
    for m in range(_n(5, scale)):
        base = rng.uniform(5, 200)
        amp, peak = rng.uniform(0.3, 0.9), rng.uniform(8, 20)
        weekend = rng.uniform(0.4, 1.0)
        for w in range(windows):
            t_ms = START_MS + int((w + 1) * window_s * 1000)
            hour = (t_ms / HOUR_MS) % 24
            day = int(t_ms // (24 * HOUR_MS))
            level = base * (1 + amp * math.sin(2 * math.pi * (hour - peak + 6) / 24))
            level *= weekend if (day + 1) % 7 in (5, 6) else 1.0  # 2024-01-01 was a Monday
            requests = rng.poisson(max(level, 0.0) * math.exp(rng.normal(0, 0.15)) * window_s)
            yield pb.RateSample(model_name=f"model-{m}", unix_ms=t_ms, window_s=window_s, requests=int(requests))


def memory(rng: np.random.Generator, scale: float) -> Iterator[pb.MemorySample]:
    n = _n(2000, scale)
    times = np.sort(rng.integers(START_MS, START_MS + 24 * HOUR_MS, n))
    for i, t_ms in enumerate(times):
        file_mb = float(np.exp(rng.uniform(math.log(0.05), math.log(800))))
        quantized = rng.random() < 0.3
        params = file_mb * (1 << 20) / (1 if quantized else 4) * rng.uniform(0.9, 1.0)
        nodes = int(np.exp(rng.uniform(math.log(5), math.log(6000))))
        in_kb, out_kb = float(np.exp(rng.uniform(0, 8))), float(np.exp(rng.uniform(-2, 6)))
        batch = int(2 ** rng.integers(0, 7))
        rss_mb = (
            rng.uniform(6, 20)
            + file_mb * rng.uniform(1.05, 1.3)
            + nodes * 0.02
            + batch * (in_kb + out_kb) / 1024 * rng.uniform(2, 4)
        ) * math.exp(rng.normal(0, 0.03))
        yield pb.MemorySample(
            model_name=f"model-{i % 400}", model_version=1, executor_id="executor-0", unix_ms=int(t_ms),
            file_bytes=int(file_mb * (1 << 20)), parameters=int(params), nodes=nodes,
            input_bytes_per_item=int(in_kb * 1024), output_bytes_per_item=int(out_kb * 1024), batch_size=batch,
            rss_delta_bytes=int(rss_mb * (1 << 20)),
        )


def latency(rng: np.random.Generator, scale: float) -> Iterator[pb.ExecutionRecord]:
    models = [(rng.uniform(0.2, 5), rng.uniform(0.05, 2)) for _ in range(6)]  # (fixed ms, ms per item)
    drift = np.zeros(len(models))
    last_run: dict[tuple[int, str], int] = {}
    finished: dict[str, list[int]] = {}
    t_ms = START_MS
    for _ in range(_n(20000, scale)):
        t_ms += int(rng.exponential(rng.choice([2.0, 20.0, 200.0], p=[0.3, 0.5, 0.2])))  # busy and quiet spells
        drift += rng.normal(0, 0.01, len(models)) - 0.002 * drift
        np.clip(drift, -0.5, 0.5, out=drift)
        m = int(rng.integers(len(models)))
        executor = f"executor-{int(rng.integers(3))}"
        batch = int(rng.choice([1, 2, 4, 8, 16]))
        recent = [t for t in finished.get(executor, []) if t > t_ms - 100]
        finished[executor] = recent
        idle_ms = t_ms - last_run.get((m, executor), t_ms - 10**7)
        cold = rng.uniform(1.5, 3) if idle_ms > 60_000 else 1.0
        fixed, per_item = models[m]
        ms = (fixed + per_item * batch) * (1 + 0.15 * len(recent)) * math.exp(drift[m]) * cold
        ms *= math.exp(rng.normal(0, 0.08))
        last_run[(m, executor)] = t_ms
        recent.append(t_ms)
        yield pb.ExecutionRecord(
            model_name=f"model-{m}", model_version=1, batch_size=batch, compute_ns=int(ms * 1e6),
            executor_id=executor, unix_ms=t_ms,
        )


def simulate(seed: int = 0, scale: float = 1.0) -> Simulation:
    """Every kind's telemetry, merged in time order into TelemetryBatch messages."""
    rng = np.random.default_rng(seed)
    anomalous: set[tuple[str, int]] = set()
    streams = {
        "rates": workload(rng, scale),
        "memory": memory(rng, scale),
        "records": latency(rng, scale),
        "health": executors(rng, scale, START_MS),
        "clients": threat_clients(rng, scale, START_MS, anomalous),
    }
    counts = dict.fromkeys(streams, 0)
    sim = Simulation([], anomalous, counts)
    merged = heapq.merge(
        *([((m.unix_ms, name, i), m) for i, m in enumerate(stream)] for name, stream in _materialised(streams))
    )
    batch = pb.TelemetryBatch()
    size = 0
    for (_, name, _), message in merged:
        getattr(batch, name).append(message)
        counts[name] += 1
        size += 1
        if size == BATCH_MESSAGES:
            sim.batches.append(batch)
            batch, size = pb.TelemetryBatch(), 0
    if size:
        sim.batches.append(batch)
    return sim


def _materialised(streams: dict[str, Iterator]) -> list[tuple[str, list]]:
    """Each stream drawn in full, in a fixed order (so draws do not depend on merge order),
    sorted by time (a generator may emit its entities one after another)."""
    return [(name, sorted(stream, key=lambda m: m.unix_ms)) for name, stream in streams.items()]
