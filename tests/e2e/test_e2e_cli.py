"""The `mlos` command against the running suite, as a separate process (as a user runs it)."""

from __future__ import annotations

import json
import subprocess
import sys

MODELS = ("iris", "ocr_cls", "silero_vad")


def mlos(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlos_cli", *args], capture_output=True, text=True, timeout=60)


def test_models_list(suite):
    done = mlos("models", "list", "--addr", suite.scheduler_addr)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[1:] if line.strip()}
    for model in MODELS:
        assert model in rows, done.stdout
        assert "READY" in rows[model], done.stdout


def test_infer_iris(suite):
    done = mlos("infer", "iris", "--addr", suite.scheduler_addr, "-i", "X=[[5.1,3.5,1.4,0.2]]")
    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout)
    assert outputs["label"] == [0]
    assert len(outputs["probabilities"][0]) == 3
    assert abs(sum(outputs["probabilities"][0]) - 1.0) < 1e-4


def test_infer_unknown_model(suite):
    done = mlos("infer", "nope", "--addr", suite.scheduler_addr, "-i", "X=[1]")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "NOT_FOUND" in done.stderr
    assert "Traceback" not in done.stderr
