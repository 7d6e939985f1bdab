"""The `mlos` command against the running suite, as a separate process (as a user runs it)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

MODELS = ("iris", "ocr_cls", "silero_vad")


def mlos(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlos_cli", *args], capture_output=True, text=True, timeout=60)


def test_models_list(suite):
    done = mlos("models", "list", "--addr", suite.scheduler_addr, "--registry", suite.info["registry_addr"])
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[1:] if line.strip()}
    for model in MODELS:
        assert model in rows, done.stdout
        assert rows[model][2:4] == ["READY", "infer"], done.stdout
    lines = done.stdout.splitlines()
    for model, task, facts in (("tinyllama-test", "generate", "gguf: llama, F32, 189K parameters, context 512 of 512"),
                               ("tiny-bert-embed", "embed", "gguf: bert, F32, 124K parameters")):
        if model in suite.info["models"]:  # the GGUF demos, registered when llama.cpp is installed
            row = next(i for i, line in enumerate(lines) if line.startswith(model + " "))
            assert lines[row].split()[3] == task and facts in lines[row + 1], done.stdout


def test_models_show(suite):
    done = mlos("models", "show", "iris", "--registry", suite.info["registry_addr"])
    assert done.returncode == 0, done.stderr
    assert "  task      infer" in done.stdout.splitlines() and "X:FP32[-1, 4]" in done.stdout, done.stdout


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


def test_register_with_priority_levels_and_preferred_batch_sizes(suite, demo_models):
    path = str(demo_models["iris"].path)
    where = ("--registry", suite.info["registry_addr"], "--addr", suite.scheduler_addr)
    done = mlos("models", "register", "iris_prio", path, *where, "--priority-levels", "5",
                "--default-priority", "2", "--preferred-batch-sizes", "2,4")
    assert done.returncode == 0, done.stderr
    assert "priority_levels 5" in done.stdout and "preferred_batch_sizes [2, 4]" in done.stdout, done.stdout

    refused = mlos("models", "register", "iris_bad", path, *where, "--preferred-batch-sizes", "0")
    assert refused.returncode == 2 and "INVALID_ARGUMENT" in refused.stderr and "preferred batch size 0" in refused.stderr
    refused = mlos("models", "register", "iris_bad", path, *where, "--priority-levels", "65")
    assert refused.returncode == 2 and "priority_levels must be at most 64" in refused.stderr, refused.stderr
    for flag, value in (("--priority-levels", "many"), ("--preferred-batch-sizes", "2,-4")):
        refused = mlos("models", "register", "iris_bad", path, *where, flag, value)
        assert refused.returncode == 2 and flag in refused.stderr and "Traceback" not in refused.stderr
    assert "iris_prio" in mlos("models", "list", "--addr", suite.scheduler_addr).stdout


def test_predict_deadline_and_admission(suite):
    mlos("infer", "iris", "--addr", suite.scheduler_addr, "-i", "X=[[5.1,3.5,1.4,0.2]]")
    roomy = mlos("predict-deadline", "iris", "--addr", suite.scheduler_addr, "--priority", "1", "--timeout-ms", "1000")
    assert roomy.returncode == 0, roomy.stderr
    assert "miss probability      0.000" in roomy.stdout and "would be admitted     yes" in roomy.stdout
    hopeless = mlos("predict-deadline", "iris", "--addr", suite.scheduler_addr, "--timeout-ms", "0.001")
    assert hopeless.returncode == 0, hopeless.stderr
    assert "would be admitted     no" in hopeless.stdout, hopeless.stdout
    bad = mlos("predict-deadline", "iris", "--addr", suite.scheduler_addr, "--priority", "9")
    assert bad.returncode == 2 and "INVALID_ARGUMENT" in bad.stderr and "priority" in bad.stderr
    table = mlos("admission", "--addr", suite.scheduler_addr)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:4] == ["MODEL", "V", "PRIO", "ADMITTED"]


def test_predictor_status_and_the_seed_http_api(suite):
    url = suite.info["predictor_http"]  # in the --json ready event
    assert not url.endswith(":9005"), "--ephemeral-ports must make the predictor's HTTP port ephemeral too"
    row = {"error_rate": 0.4, "latency_drift": 1.0, "rss_growth_mb_per_min": 0.0, "rss_budget_fraction": 0.3,
           "restarts_1h": 0.0, "executions_per_s": 50.0}  # fmt: skip
    request = urllib.request.Request(f"{url}/api/ml/predict/failure", data=json.dumps(row).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as reply:
        answer = json.loads(reply.read())
    assert answer["success"] and answer["prediction"]["reason"] == "error_rate 0.40 (typical 0.00)"
    with urllib.request.urlopen(f"{url}/health", timeout=10) as reply:
        assert reply.status == 200 and json.loads(reply.read())["status"] == "healthy"
    status = mlos("predictor", "status", "--addr", suite.info["predictor_addr"])
    assert status.returncode == 0, status.stderr
    failure = next(line.split() for line in status.stdout.splitlines() if line.startswith("failure"))
    # the HTTP prediction is counted, and so are the scheduler's GetScores polls (every 500 ms)
    assert failure[:3] == ["failure", "prior", "0"] and int(failure[7]) >= 1


def test_status_shows_executor_memory_and_the_scale_hint(suite):
    mlos("infer", "iris", "--addr", suite.scheduler_addr, "-i", "X=[[5.1,3.5,1.4,0.2]]")
    done = mlos("status", "--executor", suite.info["executor_addr"], "--predictor", suite.info["predictor_addr"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    row = lines[1].split()
    assert row[0] == suite.info["executor_addr"] and row[2] == "userspace", done.stdout
    assert float(row[3]) > 0 and float(row[4]) > 0  # the default budget (80 % of MemTotal); the models' use
    for model in MODELS:
        assert any(line.strip().startswith(f"{model} v1: ") and "MB measured" in line for line in lines), done.stdout
    assert any(line.startswith("scale hint: ") for line in lines), done.stdout
