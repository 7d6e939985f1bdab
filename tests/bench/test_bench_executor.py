"""Smoke test of `make bench-executor` (bench/bench_executor.py --quick) as a subprocess: every
switch has its off/on row with numbers, and the memory rows report what sharing saved. No
assertion on speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlos_cli.validate.bench_feed import modes

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_executor.py"


def test_bench_executor_quick(tmp_path: Path) -> None:
    out = tmp_path / "bench_executor-20260101T000000Z.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(out.read_text())
    switches = {r["switch"] for r in payload["details"]}
    assert switches == {"memory_pool", "shared_weights", "threads: rule vs all CPUs", "instances 1 -> 2", "warmup"}
    for row in payload["details"]:
        for side in ("off", "on"):
            assert len(row["runs"][side]) == 2 and all(r["runs"] > 0 for r in row["runs"][side]), row
        assert row["speedup_p50"] > 0
    off, on = payload["memory"]
    assert (off["shared_weights"], on["shared_weights"]) == (False, True)
    assert off["saved_bytes"] == 0 and on["saved_bytes"] == 1024 * 1024 * 4  # the second model's copy of the base
    assert {(f["model"], f["threads"]) for f in payload["threads_floor"]} >= {("iris", 1), ("ocr_cls", 1)}
    assert "switch" in done.stdout and "on / off" in done.stdout
    # `mlos validate` shows these rows in its on/off section
    fed = modes(tmp_path)
    assert fed is not None and {r["switch"] for r in fed["rows"]} == switches
    for r in fed["rows"]:
        assert {"model", "metric"} <= r.keys() and r["speedup"]["mean"] > 0 and r["off"]["mean"] > 0
