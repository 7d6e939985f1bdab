"""Smoke test of bench/predictor_train_stall.py on a small simulation: it starts a real predictor,
trains every kind while probing the loop and Predict, and writes both phases' figures. Nothing
here asserts on speed: on a shared host any figure may come out either way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "bench" / "predictor_train_stall.py"


@pytest.mark.timeout(180)
def test_small_run_writes_both_phases(tmp_path: Path) -> None:
    out = tmp_path / "stall.json"
    cmd = [sys.executable, str(HARNESS), "--scale", "0.1", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, f"harness failed ({done.returncode}):\n{done.stderr[-3000:]}"
    payload = json.loads(out.read_text())
    assert payload["samples"]["accepted"] > 0 and payload["samples"]["rejected"] == 0
    assert sorted(payload["training"]["outcomes"]) == sorted(["latency", "workload", "memory", "failure", "threat"])
    assert payload["training"]["train_s"] > 0
    for phase in ("quiet", "training"):
        for probe in ("loop_lag", "predict"):
            f = payload[phase][probe]
            assert f["n"] > 0 and 0 <= f["p50_ms"] <= f["p99_ms"] <= f["max_ms"], (phase, probe, f)
    assert "training   loop_lag" in done.stdout
