"""`mlos up` and the predictor's learning loop: trained models land in the suite's registry, show
in `mlos models list`, and a restarted suite serves them again (no mlos.inference imported here)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

# Runs in a child process (it imports our predictor protos): streams simulated telemetry into
# the suite's predictor, trains memory and workload, prints the outcomes as JSON.
TRAIN = """
import asyncio, json, sys
from mlos_predictor.client import PredictorClient
from mlos_predictor.simulate import simulate

async def main(addr):
    sim = simulate(seed=1, scale=0.2)
    async with PredictorClient(addr, timeout_s=120) as c:
        async def batches():
            for b in sim.batches:
                yield b
        ack = await c.stub.ReportTelemetry(batches())
        out = [(o.kind, o.replaced, o.model.version, o.reason) for k in ("memory", "workload") for o in await c.train(k)]
    print(json.dumps({"accepted": ack.accepted, "rejected": ack.rejected, "outcomes": out}))

asyncio.run(main(sys.argv[1]))
"""


def _mlos(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "mlos_cli", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _status(addr: str) -> dict[str, list[str]]:
    lines = _mlos("predictor", "status", "--addr", addr).splitlines()[1:]
    return {line.split()[0]: line.split() for line in lines}


def test_learned_models_are_registered_listed_and_reloaded(tmp_path_factory) -> None:
    from conftest import mlos_up_process

    home = tmp_path_factory.mktemp("mlos-learning")
    first = mlos_up_process(home, ("--no-demo",))
    suite = next(first)
    done = subprocess.run([sys.executable, "-c", TRAIN, suite.info["predictor_addr"]], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # the suite's own executor-0 reports health now: the simulation's older samples of it are refused
    assert report["accepted"] > 6000 and report["rejected"] < 1000, report
    assert [o[:3] for o in report["outcomes"]] == [["memory", True, 1], ["workload", True, 1]], report
    listed = _mlos("models", "list", "--addr", suite.scheduler_addr)
    assert "mlos-predictor-memory" in listed and "mlos-predictor-workload" in listed
    # tritonclient queries the learned model through the front door like any model, and gets what
    # the predictor itself serves (its seed-style HTTP API, the same engine as gRPC)
    row = {"file_mb": 2.0, "params_m": 0.5, "nodes": 40.0, "input_kb_per_item": 4.0, "output_kb_per_item": 1.0,
           "batch_size": 8.0}  # fmt: skip
    features = grpcclient.InferInput("features", [1, 6], "FP32")
    features.set_data_from_numpy(np.array([list(row.values())], dtype=np.float32))
    triton = grpcclient.InferenceServerClient(suite.scheduler_addr)
    via_triton = triton.infer("mlos-predictor-memory", [features]).as_numpy("footprint_mb")
    served = httpx.post(f"{suite.info['predictor_http']}/api/ml/predict/memory", json=row, timeout=10).json()
    assert served["prediction"]["modelVersion"] == 1, served
    assert float(via_triton.reshape(-1)[0]) == pytest.approx(served["prediction"]["value"], rel=1e-5)
    before = _status(suite.info["predictor_addr"])
    assert before["memory"][1:3] == ["trained", "1"]
    assert (home / "predictor").is_dir() and list((home / "predictor").glob("mlos-predictor-memory-*.onnx"))
    next(first, None)  # stops the suite (SIGTERM, clean exit checked)

    second = mlos_up_process(home, ("--no-demo",))
    suite = next(second)
    try:
        deadline = time.monotonic() + 30
        after = _status(suite.info["predictor_addr"])
        while after["memory"][1] != "trained" and time.monotonic() < deadline:
            time.sleep(0.2)  # bounded polling: the predictor loads registered models in the background
            after = _status(suite.info["predictor_addr"])
        for kind in ("memory", "workload"):
            assert after[kind][1:6] == before[kind][1:6], (kind, after[kind], before[kind])  # source..baseline
    finally:
        next(second, None)
