"""Smoke test of `make bench-predictor` (bench/bench_predictor.py --quick): it starts a real
predictor, measures every figure and writes them with the targets. Nothing here asserts on
speed: on a shared host any figure may come out either way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "bench" / "bench_predictor.py"


@pytest.mark.timeout(180)
def test_quick_run_writes_every_figure_and_target(tmp_path: Path) -> None:
    out = tmp_path / "predictor.json"
    cmd = [sys.executable, str(HARNESS), "--quick", "--callers", "4", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, f"harness failed ({done.returncode}):\n{done.stderr[-3000:]}"
    payload = json.loads(out.read_text())
    assert payload["kind"] == "failure" and payload["quick"] is True
    assert payload["predict"]["n"] == 200 and 0 < payload["predict"]["p50_ms"] <= payload["predict"]["p99_ms"]
    assert payload["batch"]["rows"] == 100 and 0 < payload["batch"]["p50_ms"] <= payload["batch"]["p99_ms"]
    assert payload["cached_hit"]["median_us"] > 0 and len(payload["cached_hit"]["repeats_us"]) == 5
    concurrent = payload["concurrent"]
    assert concurrent["callers"] == 4 and concurrent["predictions"] % 100 == 0 and concurrent["predictions"] > 0
    assert concurrent["predictions_per_s"] == pytest.approx(concurrent["predictions"] / concurrent["seconds"])
    names = [t["name"] for t in payload["targets"]]
    assert names == ["predict_p50_ms", "batch100_p50_ms", "cached_hit_us", "batched_predictions_per_s"]
    for t in payload["targets"]:
        assert t["ratio"] == pytest.approx(t["measured"] / t["target"]) and t["status"] in ("PASS", "FAIL")
    assert "gRPC Predict, 1 row (ms)" in done.stdout and "batched_predictions_per_s" in done.stdout
