"""Smoke tests of `make bench-peers` in --quick mode, against real servers and perf_analyzer.

The MLOS + floor test runs in `make test` (~30 s). The MLServer test needs MLServer's own
virtualenv (bench/peers/setup.sh) and runs only with MLOS_TEST_PEERS=1 (`make test-peers`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from peers_testkit import MLSERVER_PYTHON, row, run_harness

MLOS_PROCS = {"scheduler", "executor", "registry", "predictor", "perf_analyzer"}


def _iris_file() -> Path:
    import onnxruntime

    return Path(onnxruntime.__file__).parent / "datasets" / "logreg_iris.onnx"


def test_quick_iris_against_mlos_and_the_floor(perf_analyzer_ready, tmp_path):
    done, payload = run_harness(tmp_path, "--models", "iris", "--servers", "floor,mlos",
                                "--concurrency", "1")  # fmt: skip
    model = payload["models"]["iris"]
    assert model["sha256"] == hashlib.sha256(_iris_file().read_bytes()).hexdigest()
    assert model["input"] == {"name": "float_input", "dtype": "FP32", "shape": [3, 2]}
    assert payload["checks"]["mlos"]["iris"]["ok"] is True  # same label as in-process ORT

    floor, mlos = row(payload, "floor", "iris", 1), row(payload, "mlos", "iris", 1)
    for r in (floor, mlos):
        assert r["throughput_rps"] > 0 and r["request_count"] > 0
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert "loadavg" in r["idle"] and "idle_fraction" in r["idle"]
    assert set(mlos["cpu_ms_per_request"]) >= MLOS_PROCS
    # Every request crosses the scheduler and the executor: both spent CPU on it.
    assert mlos["cpu_ms_per_request"]["scheduler"] > 0
    assert mlos["cpu_ms_per_request"]["executor"] > 0
    assert floor["cpu_ms_per_request"]["floor"] > 0
    # perf_analyzer's count over 3 windows agrees with its throughput (windows >= 0.7 s each).
    assert mlos["request_count"] >= mlos["throughput_rps"] * 3 * 0.7 * 0.9
    assert mlos["vs_floor"] == pytest.approx(mlos["throughput_rps"] / floor["throughput_rps"],
                                             rel=1e-2)  # fmt: skip
    assert "MLOS/floor" in done.stdout and "scheduler=" in done.stdout


@pytest.mark.skipif(os.environ.get("MLOS_TEST_PEERS") != "1",
                    reason="MLServer smoke test: run `make test-peers` (MLOS_TEST_PEERS=1)")  # fmt: skip
def test_quick_mlserver_serves_iris_and_ocr_cls(perf_analyzer_ready, tmp_path):
    if not MLSERVER_PYTHON.is_file():
        pytest.skip(f"{MLSERVER_PYTHON} missing: run bench/peers/setup.sh")
    _, payload = run_harness(tmp_path, "--models", "iris,ocr_cls", "--servers",
                             "mlserver-inproc,mlserver", "--concurrency", "1")  # fmt: skip
    for server in ("mlserver-inproc", "mlserver"):
        for model in ("iris", "ocr_cls"):
            assert payload["checks"][server][model]["ok"] is True, payload["checks"][server]
            r = row(payload, server, model, 1)
            assert r["throughput_rps"] > 0 and r["cpu_ms_per_request"]["mlserver"] > 0
    # The default mode runs inference in a worker process; in-process mode has none.
    assert row(payload, "mlserver", "ocr_cls", 1)["cpu_ms_per_request"]["mlserver-worker"] > 0
    assert "mlserver-worker" not in row(payload, "mlserver-inproc", "ocr_cls", 1)["cpu_ms_per_request"]


def test_quick_tiny_bert_against_mlos_and_llama_inproc(perf_analyzer_ready, tmp_path):
    pytest.importorskip("llama_cpp")
    done, payload = run_harness(tmp_path, "--models", "tiny-bert-embed", "--servers",
                                "llama-inproc,mlos,mlserver", "--concurrency", "1")  # fmt: skip
    model = payload["models"]["tiny-bert-embed"]
    assert model["format"] == "gguf" and model["input"]["dtype"] == "BYTES" and model["input"]["shape"] == [1]
    # perf_analyzer sent the texts; MLOS's embedding equals llama-cpp-python's on the same text.
    check = payload["checks"]["mlos"]["tiny-bert-embed"]
    assert check["ok"] is True and check["outputs"]["embedding"]["shape"] == [1, 64]
    assert check["outputs"]["embedding"]["max_abs_diff"] <= 1e-4
    settings = payload["servers"]["llama-inproc"]["in_process"]["tiny-bert-embed"]
    assert settings["n_ctx"] == 512 and settings["n_threads"] >= 1 and settings["pooling"] == "mean"
    floor, mlos = row(payload, "llama-inproc", "tiny-bert-embed", 1), row(payload, "mlos", "tiny-bert-embed", 1)
    assert floor["throughput_rps"] > 0 and floor["cpu_ms_per_request"]["llama-inproc"] > 0 and not floor["errors"]
    assert mlos["throughput_rps"] > 0 and mlos["cpu_ms_per_request"]["executor"] > 0
    assert mlos["vs_llama_inproc"] == pytest.approx(mlos["throughput_rps"] / floor["throughput_rps"], rel=1e-2)
    # MLServer has no GGUF runtime: said so in the JSON and the output, not a silent gap (and not started).
    assert payload["skipped"] == [{"server": "mlserver", "model": "tiny-bert-embed",
                                   "reason": "MLServer 1.7.1 as installed here has no llama.cpp runtime for GGUF models"}]
    assert "mlserver" not in payload["servers"] and "mlserver x tiny-bert-embed: skipped" in done.stdout
