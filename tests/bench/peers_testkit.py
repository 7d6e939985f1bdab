"""Running the `make bench-peers` harness for real, as a subprocess (nothing imported from bench/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "bench" / "bench_peers.py"
PERF_ANALYZER = REPO / "bench" / "perf_analyzer.sh"
MLSERVER_PYTHON = REPO / "bench" / ".peers" / "mlserver" / "bin" / "python"
RUN_TIMEOUT_S = 150


def run_harness(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``bench_peers.py --quick ARGS`` with its JSON in tmp_path; returns (process, JSON)."""
    out = tmp_path / "peers.json"
    cmd = [sys.executable, str(HARNESS), "--quick", "--idle-timeout", "0", "--home",
           str(tmp_path / "home"), "--json", str(out), *args]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, f"harness failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done, json.loads(out.read_text())


def row(payload: dict, server: str, model: str, concurrency: int) -> dict:
    rows = [r for r in payload["rows"] if (r["server"], r["model"], r["concurrency"])
            == (server, model, concurrency)]  # fmt: skip
    assert len(rows) == 1, f"expected one {server}/{model}/c{concurrency} row: {payload['rows']}"
    return rows[0]
