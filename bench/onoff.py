"""Off-vs-on statistics shared by the switch benchmarks (bench_executor.py, bench_modes.py) and the
row schema `mlos validate` reads (cli/mlos_cli/validate/bench_feed.modes):

    {"switch", "model", "metric", "off": {"mean", "half_width"}, "on": {...}, "speedup": {...}}

off / on are a mean with its 95 % confidence half-width over repeated runs; speedup is the mean of
the paired (interleaved: off, on, off, on ...) runs' ratios, off / on for times and costs and
on / off for throughput, so > 1 always means the switch helps. A switch that cannot be measured
on this host gets a row with `status` "n/a", a `note` saying why, and no numbers (never invented).
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}  # two-sided t, df


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and 95 % half-width (Student's t); one value has a half-width of 0."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / len(values) ** 0.5


def interval(values: list[float]) -> dict[str, float]:
    mean, half = mean_ci(values)
    return {"mean": mean, "half_width": half}


def onoff_row(switch: str, model: str, metric: str, off: list[float], on: list[float],
              higher_is_better: bool = False) -> dict[str, Any]:
    """One dashboard row from paired runs (off[i] and on[i] ran back to back)."""
    ratios = [b / a if higher_is_better else a / b for a, b in zip(off, on, strict=True)]
    return {"switch": switch, "model": model, "metric": metric, "off": interval(off), "on": interval(on),
            "speedup": interval(ratios)}


def not_measured_row(switch: str, model: str, metric: str, note: str) -> dict[str, Any]:
    """A switch this host cannot measure: the row is there, its numbers are not."""
    return {"switch": switch, "model": model, "metric": metric, "status": "n/a", "note": note,
            "off": None, "on": None, "speedup": None}


def write_results(out: dict[str, Any], bench: str, path: Path | None) -> Path:
    """Writes `out` to `path`, default bench/results/<bench>-<UTC stamp>.json (the name bench_feed
    looks for); returns where it went."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path or RESULTS_DIR / f"{bench}-{stamp}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=2) + "\n")
    return target
