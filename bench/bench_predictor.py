"""Predictor serving benchmark: the five kinds' Predict path against the issue's targets.

    python bench/bench_predictor.py            # = make bench-predictor (~20 s)
    python bench/bench_predictor.py --quick    # a smoke run (~3 s), not a measurement

Starts a real predictor (`python -m mlos_predictor`, ephemeral port, its kinds on their priors)
and measures, for one kind (default failure: the prior plus a reason per row, the dearest path):

- gRPC Predict, one row, warm, no_cache: client round-trip p50/p99 (one caller, sequential);
- gRPC PredictBatch of 100 rows, no_cache: per-call p50/p99;
- a cached hit in process: Engine.predict on a hot row (with Prometheus series), µs per call;
- predictions/s with 32 concurrent callers sending PredictBatch of 100 distinct rows, no_cache.

Requests are built once; round trips include the client's own gRPC cost (same host, loopback).
Prints a table with each target as a ratio (<= 1 meets a latency budget, >= 1 a throughput
floor) and writes JSON to bench/results/ (or --json). On a shared 2-core host the client and
the predictor compete for the same cores: read the figures as what this host gives.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_infer import machine_info, write_json
from grpc import aio
from prometheus_client import CollectorRegistry

from mlos.predictor.v1 import predictor_pb2, predictor_pb2_grpc
from mlos_common.bootstrap import read_announcement, wait_for_serving
from mlos_predictor.engine import build_engine
from mlos_predictor.kinds import KINDS, SPECS
from mlos_predictor.rows import sample_rows

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# name -> (target, unit, higher is better): the performance targets on this 2-core machine
TARGETS = {
    "predict_p50_ms": (1.0, "ms", False),
    "batch100_p50_ms": (5.0, "ms", False),
    "cached_hit_us": (20.0, "us", False),
    "batched_predictions_per_s": (5000.0, "/s", True),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", choices=KINDS, default="failure")
    p.add_argument("--single", type=int, default=3000, help="sequential Predict calls")
    p.add_argument("--batches", type=int, default=300, help="sequential PredictBatch calls of --batch-rows")
    p.add_argument("--batch-rows", type=int, default=100)
    p.add_argument("--callers", type=int, default=32, help="concurrent PredictBatch callers")
    p.add_argument("--duration", type=float, default=5.0, help="seconds of the concurrent run")
    p.add_argument("--hits", type=int, default=20000, help="in-process cached calls per repeat (5 repeats)")
    p.add_argument("--quick", action="store_true", help="a smoke run: few calls, 1 s concurrent")
    p.add_argument("--trained", action="store_true",
                   help="first train the kind on simulated telemetry (Train RPC), so its ONNX model answers")
    p.add_argument("--json", type=Path, default=None, help="JSON path (default bench/results/bench_predictor-<utc>.json)")
    p.add_argument("--startup-timeout", type=float, default=60.0)
    args = p.parse_args(argv)
    if args.quick:
        args.single, args.batches, args.duration, args.hits = 200, 30, 1.0, 2000
    return args


def _percentiles_ms(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000.0
    return {"n": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean())}  # fmt: skip


async def _timed(call, requests: list) -> list[float]:
    out = []
    for request in requests:
        start = time.perf_counter()
        await call(request)
        out.append(time.perf_counter() - start)
    return out


async def grpc_figures(addr: str, args: argparse.Namespace) -> dict[str, Any]:
    kind = args.kind
    singles = [predictor_pb2.PredictRequest(kind=kind, features=predictor_pb2.FeatureRow(values=r), no_cache=True)
               for r in sample_rows(SPECS[kind], 64, 1).tolist()]  # fmt: skip
    batches = [
        predictor_pb2.PredictBatchRequest(
            kind=kind, no_cache=True,
            rows=[predictor_pb2.FeatureRow(values=r) for r in sample_rows(SPECS[kind], args.batch_rows, s).tolist()],
        )
        for s in range(8)
    ]  # fmt: skip
    async with aio.insecure_channel(addr) as channel:
        stub = predictor_pb2_grpc.PredictorStub(channel)
        await _timed(stub.Predict, singles[:32])  # warm-up
        single = await _timed(stub.Predict, [singles[i % len(singles)] for i in range(args.single)])
        await _timed(stub.PredictBatch, batches[:2])
        batch = await _timed(stub.PredictBatch, [batches[i % len(batches)] for i in range(args.batches)])
        stop_at = time.perf_counter() + args.duration
        done = [0] * args.callers

        async def caller(i: int) -> None:
            j = i
            while time.perf_counter() < stop_at:
                reply = await stub.PredictBatch(batches[j % len(batches)])
                done[i] += len(reply.predictions)
                j += 1

        start = time.perf_counter()
        await asyncio.gather(*(caller(i) for i in range(args.callers)))
        elapsed = time.perf_counter() - start
    return {
        "predict": _percentiles_ms(single),
        "batch": {**_percentiles_ms(batch), "rows": args.batch_rows},
        "concurrent": {"callers": args.callers, "rows_per_call": args.batch_rows, "seconds": elapsed,
                       "predictions": sum(done), "predictions_per_s": sum(done) / elapsed},
    }  # fmt: skip


def cached_hit_us(kind: str, calls: int) -> dict[str, Any]:
    """Engine.predict on one hot row in this process (Prometheus series on): µs per call,
    the median of 5 repeats."""
    engine = build_engine(CollectorRegistry())
    row = sample_rows(SPECS[kind], 1, 2)
    engine.predict(kind, row)
    repeats = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            engine.predict(kind, row)
        repeats.append((time.perf_counter() - start) / calls * 1e6)
    assert engine.predict(kind, row)[0].cached
    return {"calls_per_repeat": calls, "repeats_us": repeats, "median_us": statistics.median(repeats)}


async def start_predictor(timeout_s: float) -> tuple[asyncio.subprocess.Process, str]:
    env = {**os.environ, "MLOS_PREDICTOR_GRPC_PORT": "0", "MLOS_PREDICTOR_METRICS_PORT": "-1",
           "MLOS_PREDICTOR_HTTP_PORT": "-1", "MLOS_PREDICTOR_LOG_LEVEL": "WARNING"}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mlos_predictor", env=env, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(read_announcement(proc.stdout), timeout_s)
    if line is None:
        raise RuntimeError(f"the predictor exited with code {await proc.wait()} before listening")
    addr = f"127.0.0.1:{line['grpc_port']}"
    await wait_for_serving(addr, timeout_s)
    return proc, addr


async def train_on_simulation(addr: str, kind: str) -> str:
    """Streams simulated telemetry (mlos_predictor.simulate) and trains `kind`; what answers now."""
    from mlos_predictor.client import PredictorClient
    from mlos_predictor.simulate import simulate

    sim = simulate(seed=0, scale=1.0)

    async def batches():  # noqa: ANN202
        for b in sim.batches:
            yield b

    async with PredictorClient(addr, timeout_s=300) as client:
        await client.stub.ReportTelemetry(batches())
        (outcome,) = await client.train(kind)
    if not outcome.replaced:
        raise RuntimeError(f"training {kind} on the simulation did not replace its prior: {outcome.reason}")
    return f"trained {outcome.model.estimator}, {outcome.model.training_rows} rows"


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    proc, addr = await start_predictor(args.startup_timeout)
    try:
        model = await train_on_simulation(addr, args.kind) if args.trained else "its prior"
        figures = await grpc_figures(addr, args)
        figures["model"] = model
    finally:
        proc.terminate()
        await proc.wait()
    figures["cached_hit"] = cached_hit_us(args.kind, args.hits)
    return figures


def targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    measured = {
        "predict_p50_ms": figures["predict"]["p50_ms"],
        "batch100_p50_ms": figures["batch"]["p50_ms"],
        "cached_hit_us": figures["cached_hit"]["median_us"],
        "batched_predictions_per_s": figures["concurrent"]["predictions_per_s"],
    }
    out = []
    for name, (target, unit, higher) in TARGETS.items():
        ratio = measured[name] / target
        met = ratio >= 1.0 if higher else ratio <= 1.0
        out.append({"name": name, "measured": measured[name], "target": target, "unit": unit, "ratio": ratio,
                    "higher_is_better": higher, "status": "PASS" if met else "FAIL"})  # fmt: skip
    return out


def _line(label: str, p50: str, p99: str = "", n: object = "") -> str:
    return f"{label:<46} {p50:>10} {p99:>10} {n!s:>7}"


def table(figures: dict[str, Any], checks: list[dict[str, Any]], kind: str) -> str:
    p, b, c, hit = figures["predict"], figures["batch"], figures["concurrent"], figures["cached_hit"]
    lines = [
        f"predictor serving, kind {kind} ({figures.get('model', 'its prior')}; no_cache except the cached hit)",
        _line("measurement", "p50", "p99", "n"),
        _line("gRPC Predict, 1 row (ms)", f"{p['p50_ms']:.3f}", f"{p['p99_ms']:.3f}", p["n"]),
        _line(f"gRPC PredictBatch, {b['rows']} rows (ms per call)", f"{b['p50_ms']:.3f}", f"{b['p99_ms']:.3f}", b["n"]),
        _line("cached hit in process (us, median of 5)", f"{hit['median_us']:.2f}", "", hit["calls_per_repeat"]),
        _line(f"{c['callers']} callers x PredictBatch {c['rows_per_call']} (predictions/s)",
              f"{c['predictions_per_s']:.0f}", "", c["predictions"]),  # fmt: skip
        "",
        f"{'target':<28} {'measured':>10} {'target':>10} {'ratio':>7}  status",
    ]
    for t in checks:
        sense = ">=" if t["higher_is_better"] else "<="
        lines.append(f"{t['name']:<28} {t['measured']:>10.3f} {sense + format(t['target'], 'g'):>10} "
                     f"{t['ratio']:>7.2f}  {t['status']}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    figures = asyncio.run(measure(args))
    checks = targets(figures)
    print(table(figures, checks, args.kind))
    payload = {"benchmark": "bench_predictor", "started_utc": started.isoformat(), "kind": args.kind,
               "quick": args.quick, "machine": machine_info(), **figures, "targets": checks}  # fmt: skip
    path = write_json(args.json or RESULTS_DIR / f"bench_predictor-{started.strftime('%Y%m%dT%H%M%SZ')}.json", payload)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
