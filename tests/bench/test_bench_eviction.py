"""bench/bench_eviction.py for real at tiny settings: a budget of one model evicts, none does not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_eviction.py"


def test_a_budget_for_one_model_evicts_and_misses_where_none_keeps_everything(tmp_path: Path) -> None:
    out = tmp_path / "eviction.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--models", "3", "--rows", "64", "--requests", "20",
                           "--runs", "1", "--budgets-mb", "0,8.7", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    none, tight = (r["runs"][0] for r in json.loads(out.read_text())["results"])
    assert none["evictions"] == 0 and none["held_at_end"] == none["models_requested"] > 1
    # each model is predicted at 8.5 MB (warmed at batch 8): 8.7 MB hold one, so every switch of model evicts
    assert tight["held_at_end"] == 1 and tight["evictions"] > 0 and tight["hit_rate"] < none["hit_rate"]
    assert "HIT RATE" in done.stdout
