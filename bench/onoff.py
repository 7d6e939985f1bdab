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
import os
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


def finish(out: dict[str, Any], bench: str, lines: list[str], path: Path | None, extra: str = "") -> Path:
    """Ends a run: the load average at the end and the printed table (`lines`) go into `out`, which
    is written to `path`, default bench/results/<bench>-<UTC stamp>.json (the name bench_feed looks
    for); prints the table and where the JSON went."""
    out["machine"]["loadavg_at_end"] = os.getloadavg()
    out["summary"] = lines
    print("\n" + "\n".join(lines))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path or RESULTS_DIR / f"{bench}-{stamp}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nJSON: {target}  (load average {out['machine']['loadavg_at_start']} at start, "
          f"{out['machine']['loadavg_at_end']} at end{extra})")
    return target


def rows_table(rows: list[dict[str, Any]]) -> list[str]:
    """Rows in this schema as text: one line each, mean ± half-width; n/a rows with their note."""
    def cell(interval: dict[str, float] | None, digits: int) -> str:
        return "n/a" if interval is None else f"{interval['mean']:.{digits}f}±{interval['half_width']:.{digits}f}"

    lines = [f"{'switch':30}{'model':54}{'metric':23}{'off':>16}{'on':>16}{'speedup':>14}"]
    for r in rows:
        tail = f"  ({r['note']})" if r.get("note") else ""
        lines.append(f"{r['switch']:30}{r['model']:54}{r['metric']:23}{cell(r['off'], 2):>16}{cell(r['on'], 2):>16}"
                     f"{cell(r['speedup'], 3):>14}{tail}")
    return lines
