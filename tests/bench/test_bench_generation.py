"""Smoke test of `make bench-generation` (bench/bench_generation.py) on the tiny model: the floor,
two suites (preemption on and off) and the KV state costs all report. No assertion on speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "bench" / "bench_generation.py"


@pytest.mark.timeout(300)
def test_quick_run_reports_every_part(tmp_path: Path) -> None:
    out = tmp_path / "gen.json"
    cmd = [sys.executable, str(HARNESS), "--quick", "--shape", "tiny", "--json", str(out), "--home", str(tmp_path / "h")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=290)
    assert done.returncode == 0, f"harness failed ({done.returncode}):\n{done.stderr[-3000:]}"
    payload = json.loads(out.read_text())
    assert len(payload["floor"]) == 2 and len(payload["raw"]) == 2 and len(payload["suite"]["speed"]) == 2
    for key in ("urgent_ctx2", "urgent_ctx1"):
        assert payload["suite"][key]["during_ttft_ms"] > 0
    assert payload["fifo"]["urgent_fifo"]["during_ttft_ms"] > 0
    assert payload["state"]["state_bytes"] > 0
    assert "urgent request" in done.stdout and "the cost of serving" in done.stdout
