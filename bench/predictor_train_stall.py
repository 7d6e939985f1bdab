"""What training costs the predictor's serving: event-loop lag and Predict latency while it trains.

    python bench/predictor_train_stall.py              # all five kinds on full windows (~30 s)
    python bench/predictor_train_stall.py --scale 0.2  # a smoke run (~5 s), not a measurement

Starts a real predictor in this process (`server.start`, as its process starts it; no registry,
scheduled training off), streams simulated telemetry (`mlos_predictor.simulate`, seeded) into it
over gRPC, then measures twice for the same length of time: while idle ("quiet") and while a Train
RPC trains the kinds ("training"). Meanwhile, on the predictor's own event loop:

- loop lag: a task sleeps `--interval-ms` again and again; lag = how late each wake-up is;
- Predict: every `--interval-ms` one gRPC Predict (one row, no_cache, a fresh row each time) from
  a client in this process (loopback); its round trip.

Prints p50/p99/max of both per phase and the training's wall time and outcomes; writes JSON to
bench/results/ (or --json). The client shares the loop it measures, so a lagging loop shows in
both figures. On a shared 2-core host read them as what this host gives at that moment.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_infer import machine_info, write_json
from prometheus_client import CollectorRegistry

from mlos.predictor.v1 import predictor_pb2
from mlos_common.bootstrap import ServerParts
from mlos_predictor.client import PredictorClient
from mlos_predictor.config import PredictorSettings
from mlos_predictor.kinds import KINDS, SPECS
from mlos_predictor.rows import sample_rows
from mlos_predictor.server import start
from mlos_predictor.simulate import simulate

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="simulation size (1.0 fills the 20,000-row windows)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kind", default="", help="the kind to train (default: all five)")
    p.add_argument("--probe-kind", choices=KINDS, default="memory", help="the kind the Predict probe asks")
    p.add_argument("--interval-ms", type=float, default=5.0, help="period of the lag probe and of Predict calls")
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def _figures_ms(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000.0
    return {"n": int(ms.size), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max())}  # fmt: skip


async def _probe(client: PredictorClient, kind: str, interval_s: float, done: asyncio.Event) -> dict[str, Any]:
    """Loop lag and Predict round trips until `done` is set."""
    loop = asyncio.get_running_loop()
    rows = sample_rows(SPECS[kind], 4096, 3).tolist()
    lags: list[float] = []
    rtts: list[float] = []

    async def lag() -> None:
        while not done.is_set():
            t0 = loop.time()
            await asyncio.sleep(interval_s)
            lags.append(max(0.0, loop.time() - t0 - interval_s))

    async def predict() -> None:
        i = 0
        while not done.is_set():
            request = predictor_pb2.PredictRequest(
                kind=kind, features=predictor_pb2.FeatureRow(values=rows[i % len(rows)]), no_cache=True
            )
            t0 = time.perf_counter()
            await client.stub.Predict(request)
            rtts.append(time.perf_counter() - t0)
            i += 1
            await asyncio.sleep(interval_s)

    await asyncio.gather(lag(), predict())
    return {"loop_lag": _figures_ms(lags), "predict": _figures_ms(rtts)}


async def _quiet(client: PredictorClient, kind: str, interval_s: float, seconds: float) -> dict[str, Any]:
    gc.collect()  # the simulation's garbage is collected before, not during, a phase
    done = asyncio.Event()
    probe = asyncio.create_task(_probe(client, kind, interval_s, done))
    await asyncio.sleep(seconds)
    done.set()
    return await probe


async def _training(client: PredictorClient, args: argparse.Namespace) -> dict[str, Any]:
    gc.collect()
    done = asyncio.Event()
    probe = asyncio.create_task(_probe(client, args.probe_kind, args.interval_ms / 1000, done))
    t0 = time.perf_counter()
    try:
        outcomes = await client.train(args.kind)
    finally:
        done.set()
    figures = await probe
    figures["train_s"] = time.perf_counter() - t0
    figures["outcomes"] = {o.kind: o.reason for o in outcomes}
    return figures


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    sim = simulate(seed=args.seed, scale=args.scale)
    with tempfile.TemporaryDirectory() as tmp:
        settings = PredictorSettings(
            grpc_port=0, metrics_port=-1, http_port=-1, train_interval_s=0, data_dir=Path(tmp), log_level="WARNING"
        )
        server, port, closers = await start(settings, ServerParts(), CollectorRegistry())
        await server.start()
        try:
            async with PredictorClient(f"127.0.0.1:{port}", timeout_s=600) as client:

                async def batches():  # noqa: ANN202
                    for b in sim.batches:
                        yield b

                ack = await client.stub.ReportTelemetry(batches())
                training = await _training(client, args)
                quiet = await _quiet(client, args.probe_kind, args.interval_ms / 1000, training["train_s"])
                rows = {m.kind: m.rows_available for m in await client.model_info()}
        finally:
            await server.stop(None)
            for close in closers:
                await close()
    return {"samples": {"accepted": ack.accepted, "rejected": ack.rejected}, "rows": rows,
            "quiet": quiet, "training": training}  # fmt: skip


def table(figures: dict[str, Any]) -> str:
    lines = [
        f"trained {', '.join(figures['training']['outcomes'])} in {figures['training']['train_s']:.1f} s "
        f"(rows per kind: {figures['rows']})",
        f"{'phase':<10} {'measure':<16} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'n':>6}",
    ]
    for phase in ("quiet", "training"):
        for name in ("loop_lag", "predict"):
            f = figures[phase][name]
            lines.append(f"{phase:<10} {name:<16} {f['p50_ms']:>8.2f} {f['p99_ms']:>8.2f} {f['max_ms']:>8.1f} {f['n']:>6}")
    lines += [f"  {kind}: {reason}" for kind, reason in figures["training"]["outcomes"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    figures = asyncio.run(measure(args))
    print(table(figures))
    payload = {"benchmark": "predictor_train_stall", "started_utc": started.isoformat(), "scale": args.scale,
               "seed": args.seed, "interval_ms": args.interval_ms, "machine": machine_info(), **figures}  # fmt: skip
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    path = write_json(args.json or RESULTS_DIR / f"predictor_train_stall-{stamp}.json", payload)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
