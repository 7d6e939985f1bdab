"""`mlos up` and the scheduler's REST port: the setting each mode passes, the listening line it
reads back, and what the summary and the --json ready event say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlos_cli.__main__ import _parser, _summary
from mlos_cli.launcher import Child, Suite, SuiteConfig
from mlos_common.bootstrap import announce


def _suite(home: Path, **config) -> Suite:
    suite = Suite(SuiteConfig(home=home, **config))
    for name, port in (("registry", 8101), ("executor", 8201), ("predictor", 8301)):
        suite.children[name] = Child(name, None, port, None)  # type: ignore[arg-type]  # no process needed
    return suite


@pytest.mark.parametrize(
    "config,expected",
    [({}, "8080"), ({"ephemeral_ports": True}, "0"), ({"http_port": -1}, "-1"),
     ({"http_port": -1, "ephemeral_ports": True}, "-1"), ({"http_port": 9090}, "9090")],
)
def test_scheduler_http_port_setting(tmp_path: Path, config: dict, expected: str) -> None:
    env = _suite(tmp_path, **config)._env("scheduler")
    assert env["MLOS_SCHEDULER_HTTP_PORT"] == expected


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


def test_scheduler_subscribes_to_the_predictor(tmp_path: Path) -> None:
    env = _suite(tmp_path)._env("scheduler")
    assert env["MLOS_SCHEDULER_PREDICTOR_ADDR"] == "127.0.0.1:8301"
