"""Smoke test of `make bench-auth` (bench/bench_auth.py): every mode answers calls and the JSON
holds them. No assertion on rates: they depend on the machine's load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_short_run_times_every_mode(tmp_path: Path) -> None:
    out = tmp_path / "auth.json"
    cmd = [sys.executable, str(REPO / "bench" / "bench_auth.py"), "--duration", "0.2", "--callers", "2", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["modes"]) == {"plain", "auth", "mtls", "mtls+auth"}
    assert all(m["calls"] > 0 for m in result["modes"].values())
    assert 0 < result["token_check_us"] < 10_000
    assert "vs plain" in done.stdout
