"""`mlos predictor status`: what answers for each of the predictor's five kinds, and how it serves."""

from __future__ import annotations

import argparse
import math

from mlos.predictor.v1 import predictor_pb2 as ppb
from mlos_predictor.client import PredictorClient

DEFAULT_ADDR = "127.0.0.1:8301"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    pred = sub.add_parser("predictor", help="the predictor's learned models (latency, workload, memory, failure, threat)")
    psub = pred.add_subparsers(dest="predictor_command", required=True)
    status = psub.add_parser("status", help="per kind: prior or trained model, held-out score vs baseline, serving figures")
    status.add_argument("--addr", default=DEFAULT_ADDR, help=f"predictor gRPC address ({DEFAULT_ADDR})")


def _score(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.4g}"


def status_table(models: list[ppb.KindModelInfo], metrics: list[ppb.KindMetrics]) -> str:
    """The status table: one line per kind. A prior has no held-out score ("-"); the score is
    the kind's metric (mae: lower is better; auc: higher) next to the naive baseline's."""
    by_kind = {m.kind: m for m in metrics}
    lines = [f"{'KIND':<9} {'SOURCE':<8} {'VERSION':>7} {'METRIC':<6} {'SCORE':>9} {'BASELINE':>9} {'TRAIN_ROWS':>10} "
             f"{'COUNT':>9} {'HIT%':>6} {'P50_MS':>8} {'P99_MS':>8}"]  # fmt: skip
    for info in models:
        m = by_kind.get(info.kind, ppb.KindMetrics(kind=info.kind))
        hit = f"{100.0 * m.cache_hits / m.count:.1f}" if m.count else "-"
        p50, p99 = (f"{m.p50_ms:.3f}", f"{m.p99_ms:.3f}") if m.count else ("-", "-")
        lines.append(
            f"{info.kind:<9} {info.source:<8} {info.version:>7} {info.metric:<6} {_score(info.score):>9} "
            f"{_score(info.baseline_score):>9} {info.training_rows:>10} {m.count:>9} {hit:>6} {p50:>8} {p99:>8}"
        )
    return "\n".join(lines)


async def status(args: argparse.Namespace) -> int:
    async with PredictorClient(args.addr) as client:
        models = await client.model_info()
        metrics = await client.metrics()
    print(status_table(models, metrics))
    return 0


async def run(args: argparse.Namespace) -> int:
    """Dispatches `mlos predictor <command>`."""
    commands = {"status": status}
    return await commands[args.predictor_command](args)
