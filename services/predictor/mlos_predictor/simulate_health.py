"""Simulated executors' health (failure) and clients' request statistics (threat); see simulate.py.

Executors (one HealthSample every 5 s, 2 GiB budget). Healthy: drift ~1 +- 3 %, errors ~0.5 %,
RSS a small random walk. Episodes start at random (per 5 s step):
- memory leak (1/480): RSS grows 30-150 MB/min until it reaches the budget: OOM, silent 1-8
  intervals, restart (uptime back to 0);
- degradation (1/600): latency drift ramps from 1 to 3 over 1-4 minutes, errors rise once the
  drift passes 2 (a burst >= 50 % near the end), then a crash: silent 4-12 intervals, restart;
- sudden crash without warning (1/3000): silent 4-12 intervals, restart (unpredictable);
- error blip (1/800): 10-40 % errors for one or two intervals, then healthy (not a failure).

Clients (one ClientSample every 10 s). Normal clients have their own rate (0.5-50/s), payload
(500 B-2 MB), value scale, 0-1 % malformed requests, and rare legitimate 2-4x traffic spikes.
One in ten clients is an attacker: normal between episodes (1/30 per window, 3-30 windows) of
one kind: rate bursts (x8-40), huge payloads (x50-500), shape misuse (30-90 % shape errors),
NaN floods (5-100 % non-finite values), malformed streaks (30-100 %), or exploding values
(x1e6-1e9). Windows inside an episode are the anomalous ones (the ground truth).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from mlos.predictor.v1 import predictor_pb2 as pb

MIB = 1 << 20
BUDGET = 2048 * MIB


def _n(base: int, scale: float) -> int:
    return max(2, int(round(base * scale)))


def executors(rng: np.random.Generator, scale: float, start_ms: int) -> Iterator[pb.HealthSample]:
    steps = _n(2160, scale)  # 3 h of 5 s intervals at scale 1
    for e in range(_n(10, scale)):
        base_rss = rng.uniform(300, 600) * MIB
        rss, uptime, drift = base_rss, rng.uniform(100, 10_000), 1.0
        mode, left, growth, ramp, blip = "ok", 0, 0.0, 1, 0
        exec_rate = rng.uniform(20, 200)
        for i in range(steps):
            t_ms = start_ms + (i + 1) * 5000
            if mode == "down":
                left -= 1
                if left <= 0:
                    mode, rss, uptime, drift = "ok", base_rss, 0.0, 1.0  # restarted
                continue
            errors_frac = 0.005
            if mode == "ok":
                u = rng.random()
                if u < 1 / 480:
                    mode, growth = "leak", rng.uniform(30, 150) * MIB / 12  # per 5 s step
                elif u < 1 / 480 + 1 / 600:
                    mode, ramp = "degrade", int(rng.integers(12, 49))
                elif u < 1 / 480 + 1 / 600 + 1 / 3000:
                    mode, left = "down", int(rng.integers(4, 13))
                    continue
                elif u < 1 / 480 + 1 / 600 + 1 / 3000 + 1 / 800:
                    blip = int(rng.integers(1, 3))
                rss = max(base_rss * 0.8, rss + rng.normal(0, 2 * MIB))
                drift = 1.0
            elif mode == "leak":
                rss += growth * math.exp(rng.normal(0, 0.2))
                if rss >= BUDGET:
                    mode, left = "down", int(rng.integers(1, 9))
                    continue
            else:  # degrade
                drift += 2.0 / ramp
                errors_frac = min(0.9, max(0.005, (drift - 2.0) * 0.7))
                if drift >= 3.0:
                    mode, left = "down", int(rng.integers(4, 13))
                    continue
            if blip:
                blip -= 1
                errors_frac = rng.uniform(0.1, 0.4)
            uptime += 5.0
            executions = int(rng.poisson(exec_rate * 5))
            yield pb.HealthSample(
                executor_id=f"executor-{e}", unix_ms=t_ms, window_s=5.0, executions=executions,
                errors=int(rng.binomial(executions, errors_frac)),
                latency_drift=max(0.0, drift * (1 + rng.normal(0, 0.03))), rss_bytes=int(rss),
                memory_budget_bytes=BUDGET, uptime_s=uptime, loaded_models=3,
            )


EPISODES = ("burst", "huge", "shape", "nan", "malformed", "values")


def threat_clients(
    rng: np.random.Generator, scale: float, start_ms: int, anomalous: set[tuple[str, int]]
) -> Iterator[pb.ClientSample]:
    """Client windows; adds (client, unix_ms) of every anomalous window to `anomalous`."""
    steps = _n(360, scale)  # 1 h of 10 s windows at scale 1
    n = _n(60, scale)
    attackers = set(rng.choice(n, size=max(1, round(n / 10)), replace=False).tolist())
    for c in range(n):
        name = f"client-{c}"
        rate0 = math.exp(rng.uniform(math.log(0.5), math.log(50)))
        bytes0 = math.exp(rng.uniform(math.log(500), math.log(2e6)))
        absmax0 = math.exp(rng.uniform(0, math.log(1e4)))
        err0 = rng.uniform(0, 0.01)
        episode, left, spike = "", 0, 0
        for i in range(steps):
            t_ms = start_ms + (i + 1) * 10_000
            if c in attackers and not left and rng.random() < 1 / 30:
                episode, left = str(rng.choice(EPISODES)), int(rng.integers(3, 31))
            if not left and not spike and rng.random() < 0.01:
                spike = int(rng.integers(1, 4))
            rate = rate0 * math.exp(rng.normal(0, 0.2)) * (rng.uniform(2, 4) if spike else 1.0)
            bytes_mean = bytes0 * math.exp(rng.normal(0, 0.1))
            malformed_frac, shape_share, nonfinite_frac = err0, 0.5, 0.0
            absmax = absmax0 * math.exp(rng.normal(0, 0.3))
            if left:
                anomalous.add((name, t_ms))
                if episode == "burst":
                    rate *= rng.uniform(8, 40)
                elif episode == "huge":
                    bytes_mean *= rng.uniform(50, 500)
                elif episode == "shape":
                    malformed_frac, shape_share = rng.uniform(0.3, 0.9), 1.0
                elif episode == "nan":
                    nonfinite_frac = rng.uniform(0.05, 1.0)
                    absmax = math.nan if rng.random() < 0.5 else math.inf
                elif episode == "malformed":
                    malformed_frac, shape_share = rng.uniform(0.3, 1.0), 0.1
                else:
                    absmax *= 10 ** rng.uniform(6, 9)
                left -= 1
            spike = max(0, spike - 1)
            requests = max(1, int(rng.poisson(rate * 10)))
            malformed = int(rng.binomial(requests, malformed_frac))
            sampled = min(requests, 64) * 16
            yield pb.ClientSample(
                client=name, unix_ms=t_ms, window_s=10.0, requests=requests, malformed=malformed,
                shape_errors=int(rng.binomial(malformed, shape_share)), bytes_mean=bytes_mean,
                bytes_max=bytes_mean * rng.uniform(1, 2), value_absmax=absmax, values_sampled=sampled,
                nonfinite=int(rng.binomial(sampled, nonfinite_frac)),
            )
