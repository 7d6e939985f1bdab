"""Smoke test of `make bench-predictor-cache` (bench/predictor_cache.py): the suite starts, named
clients send traffic, and the predictor's cache counters come back per kind. No assertion on rates:
they depend on timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "bench" / "predictor_cache.py"


@pytest.mark.timeout(240)
def test_short_run_reports_every_kind(tmp_path: Path) -> None:
    out = tmp_path / "cache.json"
    cmd = [sys.executable, str(HARNESS), "--duration", "3", "--clients", "2", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=230)
    assert done.returncode == 0, f"harness failed ({done.returncode}):\n{done.stderr[-3000:]}"
    payload = json.loads(out.read_text())
    assert payload["requests"] > 0 and payload["clients"] == 2
    assert payload["refused_rate_limited"] >= 0  # a bursty named client may be rate-limited: counted, not fatal
    assert set(payload["kinds"]) == {"latency", "workload", "memory", "failure", "threat"}
    for k in payload["kinds"].values():
        assert 0.0 <= k["hit_rate"] <= 1.0 and k["ttl_ms"] > 0
    assert payload["kinds"]["memory"]["misses"] >= 1  # the executor asked before loading the demo models
    assert "seed expected" in done.stdout
