"""Smoke test of `make bench-slo` (bench/bench_slo.py --mode all, tiny): it starts real suites per
policy and setting, and its JSON has every section the README describes. Nothing here asserts on
speed: on a shared host any figure may come out either way.

Also the arithmetic that turns the scheduler's cumulative admission counters into one run's
figures (real protocol messages, no server needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlos.scheduler.v1 import scheduler_pb2 as spb

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "bench" / "bench_slo.py"
CLASS_KEYS = {"priority", "deadline_ms", "share", "offered", "offered_rps", "outcomes", "goodput_rps",
              "goodput_share", "miss_rate", "early_reject_rate", "admitted_met_share", "p50_ms", "p99_ms",
              "lag_p99_ms", "admission"}  # fmt: skip
OUTCOMES = {"met", "late", "rejected", "expired"}


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict, Path]:
    tmp = tmp_path_factory.mktemp("slo")
    out = tmp / "slo.json"
    cmd = [sys.executable, str(HARNESS), "--mode", "all", "--quick", "--loads", "0.5,1.5", "--duration", "1",
           "--capacity-duration", "1", "--capacity-concurrency", "4", "--rounds", "1",
           "--home", str(tmp / "home"), "--json", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"harness failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done, json.loads(out.read_text()), out


@pytest.mark.timeout(300)
def test_slo_rows_for_both_policies_every_load_and_class(harness) -> None:
    done, payload, _ = harness
    assert payload["model"] == "ocr_cls" and payload["capacity_rps"] > 0
    assert [c["priority"] for c in payload["classes"]] == [1, 2, 3]
    assert list(payload["policies"]) == ["fifo", "deadline"]
    for policy, runs in payload["policies"].items():
        assert [r["load"] for r in runs] == [0.5, 1.5], policy
        for run in runs:
            assert run["rate_rps"] == pytest.approx(run["load"] * payload["capacity_rps"])
            assert len(run["classes"]) == 3
            for c in run["classes"]:
                assert set(c) == CLASS_KEYS
                assert c["offered"] > 0 and sum(c["outcomes"].values()) == c["offered"]
                assert set(c["outcomes"]) <= OUTCOMES | {k for k in c["outcomes"] if k.startswith("error:")}
                assert 0 <= c["goodput_share"] <= 1 and 0 <= c["miss_rate"] <= 1
                assert c["goodput_share"] + c["miss_rate"] + c["early_reject_rate"] == pytest.approx(1)
                if c["p50_ms"] is not None:
                    assert 0 < c["p50_ms"] <= c["p99_ms"]
                adm = c["admission"]
                assert adm is None or {"admitted", "brier", "reliability"} <= set(adm)
            assert run["queue"] is None or run["queue"]["requests"] >= 0
    statuses = {t["status"] for t in payload["targets"]}
    assert len(payload["targets"]) == 3 and statuses <= {"PASS", "FAIL", "n/a"}
    goodput = payload["targets"][1]
    assert goodput["fifo_goodput_rps"] >= 0 and goodput["deadline_goodput_rps"] >= 0
    assert "goodput%" in done.stdout and "early-rej%" in done.stdout and "Brier score" in done.stdout


@pytest.mark.timeout(300)
def test_batching_and_cpu_sections_and_plot(harness) -> None:
    done, payload, out = harness
    batching = payload["batching"]
    assert len(batching["rounds"]["on"]) == len(batching["rounds"]["off"]) == 1
    assert batching["throughput_on_rps"] > 0 and batching["throughput_off_rps"] > 0
    assert batching["on_over_off"] == pytest.approx(batching["throughput_on_rps"] / batching["throughput_off_rps"])
    cpu = payload["cpu"]
    for side in ("predict_true", "predict_false"):
        (run,) = cpu[side]["rounds"]
        assert run["requests"] > 0 and run["scheduler_cpu_ms"] > 0  # the scheduler did work for them
    assert "scheduler CPU per request" in done.stdout and "batching on/off" in done.stdout
    assert out.with_suffix(".png").stat().st_size > 1000


def _stats(priority: int, n: int, brier: float, bins: list[tuple[float, float, int, float, float]], **counts):
    return spb.AdmissionStats(
        model_name="m", priority=priority, brier=brier, brier_count=n, **counts,
        reliability=[spb.ReliabilityBin(predicted_low=lo, predicted_high=hi, count=c, mean_predicted=p,
                                        observed_miss_rate=o) for lo, hi, c, p, o in bins])  # fmt: skip


def test_admission_delta_is_one_runs_share() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from slo.admin import admission_delta, pooled_brier
    finally:
        sys.path.remove(str(REPO / "bench"))
    before = _stats(1, 10, 0.1, [(0.0, 0.1, 10, 0.05, 0.1)], admitted=10, met=9, missed=1)
    # 10 more: squared errors summing to 0.5 (total 1.0 + 0.5 over 20); 4 in the first bin, 6 in a new one
    after = _stats(1, 20, 0.075, [(0.0, 0.1, 14, (0.5 + 4 * 0.02) / 14, 2 / 14), (0.5, 0.6, 6, 0.55, 0.5)],
                   admitted=20, met=17, missed=3, rejected_predicted=4)  # fmt: skip
    d = admission_delta(before, after)
    assert (d["admitted"], d["met"], d["missed"], d["rejected_predicted"]) == (10, 8, 2, 4)
    assert d["brier_count"] == 10 and d["brier"] == pytest.approx(0.05)
    first, second = d["reliability"]
    assert first["count"] == 4 and first["mean_predicted"] == pytest.approx(0.02)
    assert first["observed_miss_rate"] == pytest.approx(0.25)
    assert (second["count"], second["mean_predicted"], second["observed_miss_rate"]) == (6, pytest.approx(0.55), 0.5)
    assert admission_delta(None, None) is None and admission_delta(None, after)["brier"] == pytest.approx(0.075)
    assert pooled_brier([d, None, {"brier": 0.25, "brier_count": 10}]) == pytest.approx(0.15)
