"""`mlos predictor status`: what answers for each of the predictor's five kinds, and how it serves.
`mlos predictor eval`: the learned models against their naive baselines on simulated telemetry,
in this process (mlos_predictor.evaluate); exits 1 if a learned model does not beat its baseline.
`--plot PATH.png` also draws the held-out predictions (mlos_predictor.eval_plot; needs matplotlib).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from mlos.predictor.v1 import predictor_pb2 as ppb
from mlos_predictor.client import PredictorClient

DEFAULT_ADDR = "127.0.0.1:8301"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    pred = sub.add_parser("predictor", help="the predictor's learned models (latency, workload, memory, failure, threat)")
    psub = pred.add_subparsers(dest="predictor_command", required=True)
    status = psub.add_parser("status", help="per kind: prior or trained model, held-out score vs baseline, serving figures")
    status.add_argument("--addr", default=DEFAULT_ADDR, help=f"predictor gRPC address ({DEFAULT_ADDR})")
    ev = psub.add_parser(
        "eval", help="learned models vs their naive baselines on simulated telemetry (in-process, under a minute)"
    )
    ev.add_argument("--seed", type=int, default=0, help="simulation and training seed (0)")
    ev.add_argument("--scale", type=_scale, default=1.0, help="size of the simulation (1.0; 0.2 for a quick look)")
    ev.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the results as JSON")
    ev.add_argument(
        "--plot", type=_png, default=None, metavar="PATH.png",
        help="also draw a figure: predicted vs actual (latency, memory, workload) and ROC (failure, threat)",
    )  # fmt: skip


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0.05 <= value <= 4.0:
        raise argparse.ArgumentTypeError(f"must be between 0.05 and 4, got {value:g}")
    return value


def _png(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() != ".png":
        raise argparse.ArgumentTypeError(f"must be a .png file, got {text!r}")
    return path


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


async def run_eval(args: argparse.Namespace) -> int:
    from mlos_predictor.evaluate import as_json, evaluate, table
    from mlos_predictor.trainer import unavailable

    off = unavailable() or (_plot_unavailable(args.plot) if args.plot is not None else None)
    if off is not None:  # said before the minute of work, not after
        print(f"mlos: {off}", file=sys.stderr)
        return 2
    results, meta = evaluate(seed=args.seed, scale=args.scale)  # CPU-bound, and the only work of this process
    print(table(results))
    print(
        f"seed {args.seed}, scale {args.scale:g}: {meta['messages']:.0f} telemetry messages; simulate "
        f"{meta['simulate_s']:.1f} s, ingest {meta['ingest_s']:.1f} s, train and score {meta['train_s']:.1f} s"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(as_json(results, meta), indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot is not None:
        from mlos_predictor.eval_plot import save

        print(f"wrote {save(results, meta, args.plot)}")
    losers = [r.kind for r in results if not r.beats_baseline]
    if losers:
        print(f"mlos: not better than the baseline: {', '.join(losers)}", file=sys.stderr)
        return 1
    return 0


def _plot_unavailable(path: Path) -> str | None:
    """Why the figure cannot be written to `path` (no matplotlib, no folder for it), or None."""
    from mlos_predictor.eval_plot import unavailable

    off = unavailable()
    if off is not None:
        return off
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"--plot {path}: cannot create the folder {e.filename or path.parent}: {e.strerror or e}"
    return None


async def run(args: argparse.Namespace) -> int:
    """Dispatches `mlos predictor <command>`."""
    commands = {"status": status, "eval": run_eval}
    return await commands[args.predictor_command](args)
