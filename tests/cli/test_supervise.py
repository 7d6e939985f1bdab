"""`mlos up`'s supervisor with real child processes: backoff that doubles up to its cap, a give-up
after too many crashes in the window (with a message naming the service), the other children left
alone, a stop that ends a backoff at once, and a restarted child pinned to its old ports.
(The whole-suite kill -9 test is tests/e2e/test_e2e_supervision.py.)"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from predictor_testkit import ManualClock

from mlos_cli.launcher import Child, Suite, SuiteConfig
from mlos_cli.supervise import CrashBook, RestartPolicy, Supervisor


def test_backoff_doubles_up_to_the_cap_then_gives_up() -> None:
    clock = ManualClock()
    book = CrashBook(RestartPolicy(initial_backoff_s=0.5, max_backoff_s=3.0, max_restarts=5, window_s=60), clock)
    assert [book.record("executor") for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert book.record("executor") is None  # the 6th crash within 60 s
    assert book.record("registry") == 0.5  # counted per service


def test_crashes_older_than_the_window_are_forgotten() -> None:
    clock = ManualClock()
    book = CrashBook(RestartPolicy(initial_backoff_s=1.0, max_restarts=2, window_s=10), clock)
    assert book.record("executor") == 1.0 and book.record("executor") == 2.0
    clock.now += 10.5
    assert book.record("executor") == 1.0 and book.count("executor") == 1


async def _child(name: str, code: str) -> Child:
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdin=asyncio.subprocess.PIPE)
    return Child(name, process, 1, None)


@pytest.fixture
async def steady() -> Child:
    """A child that keeps running (reading its open stdin) until the test ends: a service that keeps serving."""
    child = await _child("registry", "import sys; sys.stdin.read()")
    yield child
    child.process.kill()
    await child.process.wait()


async def test_a_crashing_service_is_restarted_until_it_gives_up(steady: Child) -> None:
    crash = "import sys; sys.exit(3)"
    children = {"registry": steady, "executor": await _child("executor", crash)}
    events: list[dict] = []
    restarted: list[int] = []

    async def restart(name: str) -> Child:
        child = await _child(name, crash)
        restarted.append(child.process.pid)
        return child

    policy = RestartPolicy(initial_backoff_s=0.01, max_backoff_s=0.02, max_restarts=3, window_s=60)
    code = await asyncio.wait_for(Supervisor(children, restart, policy, events.append).run(asyncio.Event()), 30)

    assert code == 1
    assert [e["event"] for e in events] == ["crashed", "restarted"] * 3 + ["gave_up"]
    assert [e["restart_in_s"] for e in events if e["event"] == "crashed"] == [0.01, 0.02, 0.02]
    assert [e["pid"] for e in events if e["event"] == "restarted"] == restarted
    assert all(e["service"] == "executor" and e.get("exit_code", 3) == 3 for e in events)
    assert events[-1]["message"] == "executor crashed 4 times within 60s (last exit code 3); giving up and stopping the suite"
    assert children["registry"] is steady and steady.process.returncode is None  # never touched


async def test_a_restart_that_fails_counts_as_a_crash(steady: Child) -> None:
    from mlos_cli.launcher import SuiteError

    children = {"registry": steady, "scheduler": await _child("scheduler", "import sys; sys.exit(1)")}
    events: list[dict] = []
    attempts = 0

    async def restart(name: str) -> Child:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise SuiteError("scheduler did not start: exited with code 1")
        return await _child(name, "import sys; sys.stdin.read()")

    stop = asyncio.Event()

    def report(event: dict) -> None:
        events.append(event)
        if event["event"] == "restarted":
            stop.set()

    policy = RestartPolicy(initial_backoff_s=0.01, max_restarts=3)
    assert await asyncio.wait_for(Supervisor(children, restart, policy, report).run(stop), 10) == 0
    assert [(e["event"], e["crashes"]) for e in events] == [("crashed", 1), ("crashed", 2), ("restarted", 2)]
    children["scheduler"].process.kill()
    await children["scheduler"].process.wait()


async def test_stop_ends_a_backoff_at_once(steady: Child) -> None:
    children = {"registry": steady, "executor": await _child("executor", "import sys; sys.exit(2)")}
    events: list[dict] = []
    stop = asyncio.Event()

    async def restart(name: str) -> Child:
        raise AssertionError("no restart after stop")

    def report(event: dict) -> None:
        events.append(event)
        stop.set()  # Ctrl-C during the 60 s backoff

    policy = RestartPolicy(initial_backoff_s=60, max_backoff_s=60)
    assert await asyncio.wait_for(Supervisor(children, restart, policy, report).run(stop), 5) == 0
    assert [e["event"] for e in events] == ["crashed"]


def test_a_restarted_child_keeps_its_ports(tmp_path: Path) -> None:
    suite = Suite(SuiteConfig(home=tmp_path, ephemeral_ports=True, executors=2))
    for name, port in (("registry", 41001), ("predictor", 41003)):
        suite.children[name] = Child(name, None, port, None)  # type: ignore[arg-type]  # only addresses are read
    assert suite._env("executor", 1)["MLOS_EXECUTOR_GRPC_PORT"] == "0"
    suite.pinned["executor-1"] = Child("executor-1", None, 41005, 41006)  # type: ignore[arg-type]
    env = suite._env("executor", 1)
    assert (env["MLOS_EXECUTOR_GRPC_PORT"], env["MLOS_EXECUTOR_METRICS_PORT"]) == ("41005", "41006")
    assert suite._env("executor", 0)["MLOS_EXECUTOR_GRPC_PORT"] == "0"  # only the restarted one
    suite.children["executor"] = Child("executor", None, 41007, None)  # type: ignore[arg-type]
    suite.children["executor-1"] = Child("executor-1", None, 41005, None)  # type: ignore[arg-type]
    suite.pinned["scheduler"] = Child("scheduler", None, 41009, 41010, 41011)  # type: ignore[arg-type]
    env = suite._env("scheduler")
    assert (env["MLOS_SCHEDULER_GRPC_PORT"], env["MLOS_SCHEDULER_HTTP_PORT"]) == ("41009", "41011")
