"""Smoke test of `make bench-modes` (bench/bench_modes.py --quick, ~30 s) as a subprocess: four real
suites, every suite switch has its off/on rows with numbers, NUMA pinning is a row without numbers
on a one-node host, the fast-path-off suite really took no fast path, and `mlos validate` reads the
rows. No assertion on speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlos_cli.validate.bench_feed import modes
from mlos_executor.numa import read_topology

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_modes.py"
MEASURED = {"client shared memory", "executor link shared memory", "executor link: Unix vs gRPC", "fast path",
            "adaptive window", "prefetch"}


def test_bench_modes_quick(tmp_path: Path) -> None:
    out = tmp_path / "bench_modes-20260101T000000Z.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert {d["switch"] for d in payload["details"]} == MEASURED
    for d in payload["details"]:
        assert len(d["runs"]["off"]) == len(d["runs"]["on"]) == 2, d
    measured = [r for r in payload["rows"] if r.get("status") != "n/a"]
    assert {r["switch"] for r in measured} == MEASURED
    assert {(r["switch"], r["metric"]) for r in measured} >= {
        ("client shared memory", "p50 ms"), ("executor link shared memory", "p50 ms"), ("fast path", "p50 ms"),
        ("adaptive window", "requests/s"), ("adaptive window", "p99 ms"), ("prefetch", "first request ms")}
    for r in measured:
        assert r["off"]["mean"] > 0 and r["on"]["mean"] > 0 and r["speedup"]["mean"] > 0, r
    (numa,) = [r for r in payload["rows"] if r["switch"] == "NUMA pinning"]
    assert numa["status"] == "n/a" and numa["off"] is None and numa["speedup"] is None
    if len(read_topology().nodes) == 1:
        assert numa["note"] == "not measurable: 1 NUMA node"
    fast = payload["fast_path_batches"]
    assert fast["fast_path_off"] == 0 and fast["default"] > 0  # the setting took effect in its suite only
    assert payload["machine"]["runtime_mode"] in {"userspace", "kernel_basic", "kernel_scheduler", "kernel_full"}
    assert payload["machine"]["versions"]["onnxruntime"]
    assert "speedup" in done.stdout and "n/a" in done.stdout
    fed = modes(tmp_path)
    assert fed is not None and {r["switch"] for r in fed["rows"]} == MEASURED | {"NUMA pinning"}
    assert all(r["source"] == str(out) for r in fed["rows"])


def test_bench_modes_refuses_settings_that_cannot_give_an_interval() -> None:
    for args, needle in ((["--repeats", "1"], "--repeats: must be >= 2"), (["--mb", "0"], "--mb: must be > 0"),
                         (["--duration-s", "-1"], "--duration-s: must be > 0")):
        done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and needle in done.stderr, (args, done.stderr)
