"""`mlos validate --compare OLD.json`: the regressions of this run against an older one.

A metric regresses when it is worse by more than MIN_CHANGE and beyond noise (stats.regressed:
the two runs' confidence intervals do not overlap). Metrics measured once (best-batch rows/s)
have no interval and need SINGLE_RUN_CHANGE. A model that passed before and fails now is always
a regression. Models in only one of the runs are listed, not judged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from mlos_cli.validate.stats import Interval, regressed

MIN_CHANGE = 0.10
SINGLE_RUN_CHANGE = 0.25


def _interval(d: dict) -> Interval:
    half = d.get("half_width")
    return Interval(d["mean"], math.nan if half is None else half, d.get("runs", 1))


def load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the old results {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ValueError(f"{path} is not a `mlos validate` results.json (no 'models' list)")
    return data


def _row(model: str, metric: str, old: float, new: float) -> dict:
    return {"model": model, "metric": metric, "old": old, "new": new, "change": (new - old) / old if old else 0.0}


def _model_regressions(name: str, old: dict, new: dict) -> list[dict]:
    found = []
    if old.get("status") == "pass" and new.get("status") != "pass":
        found.append({"model": name, "metric": f"status (now: {new.get('reason', '')})", "old": 1.0, "new": 0.0,
                      "change": -1.0})
        return found
    for metric in ("p50_ms", "p99_ms"):
        before, after = old.get("batch1", {}).get(metric), new.get("batch1", {}).get(metric)
        if before and after and regressed(_interval(before), _interval(after), True, MIN_CHANGE):
            found.append(_row(name, f"batch-1 {metric}", before["mean"], after["mean"]))
    before, after = old.get("best_batch", {}).get("rows_per_s"), new.get("best_batch", {}).get("rows_per_s")
    if before and after and regressed(Interval(before, math.nan, 1), Interval(after, math.nan, 1), False,
                                      SINGLE_RUN_CHANGE):
        found.append(_row(name, "best-batch rows/s", before, after))
    return found


def regressions(old: dict, new: dict, against: str) -> dict:
    before = {m["name"]: m for m in old["models"]}
    after = {m["name"]: m for m in new["models"]}
    found = [r for name in sorted(before.keys() & after.keys()) for r in _model_regressions(name, before[name], after[name])]
    return {"against": against, "found": found, "only_old": sorted(before.keys() - after.keys()),
            "only_new": sorted(after.keys() - before.keys())}
