"""`mlos up` and the scheduler's REST port: the setting each mode passes, the listening line it
reads back, and what the summary and the --json ready event say."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlos_cli.__main__ import _parser, _summary
from mlos_cli.launcher import Child, Suite, SuiteConfig
from mlos_common.bootstrap import announce
from mlos_executor.memory import mem_total_bytes


def _suite(home: Path, **config) -> Suite:
    suite = Suite(SuiteConfig(home=home, **config))
    for name, port in (("registry", 8101), ("executor", 8201), ("predictor", 8301)):
        suite.children[name] = Child(name, None, port, None)  # type: ignore[arg-type]  # no process needed
    return suite


@pytest.mark.parametrize(
    "service,field,default",
    [("scheduler", "http_port", "8080"), ("predictor", "predictor_http_port", "9005")],
)
@pytest.mark.parametrize(
    "config,expected",
    [({}, "default"), ({"ephemeral_ports": True}, "0"), ({"port": -1}, "-1"),
     ({"port": -1, "ephemeral_ports": True}, "-1"), ({"port": 9090}, "9090")],
)
def test_http_port_settings(tmp_path: Path, service: str, field: str, default: str, config: dict, expected: str) -> None:
    """The scheduler's REST port and the predictor's HTTP API port, each from its own option."""
    config = {field if k == "port" else k: v for k, v in config.items()}
    env = _suite(tmp_path, **config)._env(service)
    assert env[f"MLOS_{service.upper()}_HTTP_PORT"] == (default if expected == "default" else expected)


def test_listening_line_carries_the_http_port(capsys: pytest.CaptureFixture) -> None:
    announce("scheduler", 8001, 8002, http_port=8080)
    line = json.loads(capsys.readouterr().out)
    assert line == {"event": "listening", "service": "scheduler", "grpc_port": 8001, "metrics_port": 8002,
                    "http_port": 8080}


def test_ready_event_and_summary_name_the_rest_url(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    suite.children["scheduler"] = Child("scheduler", None, 8001, 8002, 8080)  # type: ignore[arg-type]
    info = suite.endpoints()
    assert info["scheduler_http"] == "http://127.0.0.1:8080"
    assert "KServe v2 REST http://127.0.0.1:8080" in _summary(info)

    suite.children["scheduler"] = Child("scheduler", None, 8001, 8002, None)  # type: ignore[arg-type]
    info = suite.endpoints()
    assert "scheduler_http" not in info
    assert "REST" not in _summary(info)


@pytest.mark.parametrize("workers", [1, 3])
def test_scheduler_workers_setting(tmp_path: Path, workers: int) -> None:
    env = _suite(tmp_path, scheduler_workers=workers)._env("scheduler")
    assert env["MLOS_SCHEDULER_WORKERS"] == str(workers)


def test_up_takes_scheduler_workers(capsys: pytest.CaptureFixture) -> None:
    assert _parser().parse_args(["up", "--scheduler-workers", "2"]).scheduler_workers == 2
    assert _parser().parse_args(["up"]).scheduler_workers == 1
    with pytest.raises(SystemExit):
        _parser().parse_args(["up", "--scheduler-workers", "0"])
    assert "must be at least 1, got 0" in capsys.readouterr().err


def test_executors_take_consecutive_port_pairs_and_the_scheduler_gets_them_all(tmp_path: Path) -> None:
    suite = _suite(tmp_path, executors=3)
    assert suite.executor_names() == ["executor", "executor-1", "executor-2"]
    envs = [suite._env("executor", i) for i in range(3)]
    assert [(e["MLOS_EXECUTOR_GRPC_PORT"], e["MLOS_EXECUTOR_METRICS_PORT"]) for e in envs] == [
        ("8201", "8202"), ("8203", "8204"), ("8205", "8206")]
    assert len({e["MLOS_EXECUTOR_CACHE_DIR"] for e in envs}) == len({e["MLOS_EXECUTOR_EXECUTOR_ID"] for e in envs}) == 3
    assert all(int(e["MLOS_EXECUTOR_INTRA_OP_THREADS"]) >= 1 for e in envs)
    if "MLOS_EXECUTOR_MEMORY_BUDGET_MB" not in os.environ:  # a third each of the default 80 % of MemTotal
        share_mb = mem_total_bytes() * 0.8 / 3 / (1 << 20)
        assert all(float(e["MLOS_EXECUTOR_MEMORY_BUDGET_MB"]) == pytest.approx(share_mb, abs=1) for e in envs)
    for i, port in ((1, 8203), (2, 8205)):
        suite.children[f"executor-{i}"] = Child(f"executor-{i}", None, port, None)  # type: ignore[arg-type]
    env = suite._env("scheduler")
    assert env["MLOS_SCHEDULER_EXECUTOR_ADDRS"] == "127.0.0.1:8201,127.0.0.1:8203,127.0.0.1:8205"
    one = _suite(tmp_path)._env("executor")  # one executor: its own automatic threads, unless set by hand
    assert one.get("MLOS_EXECUTOR_INTRA_OP_THREADS") == os.environ.get("MLOS_EXECUTOR_INTRA_OP_THREADS")
    assert one.get("MLOS_EXECUTOR_MEMORY_BUDGET_MB") == os.environ.get("MLOS_EXECUTOR_MEMORY_BUDGET_MB")


def test_up_takes_executors() -> None:
    assert _parser().parse_args(["up", "--executors", "3"]).executors == 3
    with pytest.raises(SystemExit):
        _parser().parse_args(["up", "--executors", "0"])


def test_scheduler_subscribes_to_the_predictor(tmp_path: Path) -> None:
    env = _suite(tmp_path)._env("scheduler")
    assert env["MLOS_SCHEDULER_PREDICTOR_ADDR"] == "127.0.0.1:8301"


def test_ready_event_and_summary_name_the_predictor_http_url(tmp_path: Path) -> None:
    assert _parser().parse_args(["up"]).predictor_http_port == 9005
    assert _parser().parse_args(["up", "--predictor-http-port", "-1"]).predictor_http_port == -1
    suite = _suite(tmp_path)
    suite.children["predictor"] = Child("predictor", None, 8301, 8302, 9005)  # type: ignore[arg-type]
    suite.children["scheduler"] = Child("scheduler", None, 8001, 8002, 8080)  # type: ignore[arg-type]
    info = suite.endpoints()
    assert info["predictor_http"] == "http://127.0.0.1:9005"
    assert "predictor HTTP http://127.0.0.1:9005/api/ml" in _summary(info)


def test_predictor_gets_the_registry_and_a_data_dir(tmp_path: Path) -> None:
    """The learned models are registered in the suite's registry and written under --home."""
    env = _suite(tmp_path)._env("predictor")
    assert env["MLOS_PREDICTOR_REGISTRY_ADDR"] == "127.0.0.1:8101"
    assert env["MLOS_PREDICTOR_DATA_DIR"] == str(tmp_path / "predictor")
