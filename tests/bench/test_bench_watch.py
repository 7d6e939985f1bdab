"""Smoke test of bench/bench_watch.py with tiny settings: a real registry and follower, the table and
the JSON. Nothing here asserts on speed: on a shared host any figure may come out either way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "bench" / "bench_watch.py"


@pytest.mark.timeout(120)
def test_quick_run_writes_lookup_and_propagation_figures(tmp_path: Path) -> None:
    out = tmp_path / "watch.json"
    done = subprocess.run([sys.executable, str(HARNESS), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, f"harness failed ({done.returncode}):\n{done.stderr[-3000:]}"
    payload = json.loads(out.read_text())
    assert payload["registrations"] == 5 and payload["lookups"] == 100
    assert payload["lookup"]["view_us"] > 0 and payload["lookup"]["get_model_us"] > 0
    for figure in ("register_call", "visible_in_view"):
        assert 0 < payload[figure]["p50_ms"] <= payload[figure]["p95_ms"], figure
    assert "lookup from the view" in done.stdout
