"""Executors found through DNS, as the Helm chart names them: one name per StatefulSet pod behind a
headless Service, up to the HPA's maximum. A name that resolves (here `localhost`) is served; a
name with no pod behind it yet (an `.invalid` name never resolves) is a peer that is not serving
and blocks neither readiness nor inference; an executor that appears later at a listed address
is used with no scheduler restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from predictor_testkit import free_port
from sched_testkit import InProcessExecutor, Stack, running_stack
from test_sched_routing import ask_iris, executions, ready

from mlos_cli.demo import DemoModel

ABSENT = "t-mlos-executor-7.t-mlos-executor.invalid:8201"  # a pod the HPA has not made (yet)


def by_name(addrs: list[str]) -> str:
    return ",".join([a.replace("127.0.0.1", "localhost") for a in addrs] + [ABSENT])


async def until_peers(stack: Stack, want: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Runs the scheduler's peer checks until `want()`; a new listener is seen once gRPC's reconnect
    backoff for that address expires, which no event reports, hence the bounded re-checks."""
    deadline = time.monotonic() + timeout_s
    while True:
        await stack.monitor.check_all()
        if want():
            return
        assert time.monotonic() < deadline, [(e.addr, e.healthy) for e in stack.core.executors]
        await asyncio.sleep(0.2)


@pytest.mark.timeout(90)
async def test_executors_named_through_dns_one_not_there_yet(tmp_path: Path, demo: dict[str, DemoModel]) -> None:
    async with running_stack(tmp_path, demo, load=("iris",), executor_addrs=by_name) as s:
        assert [e.addr for e in s.core.executors] == [f"localhost:{s.executors[0].port}", ABSENT]
        assert s.core.executors[0].healthy and not s.core.executors[1].healthy
        assert await ready(s) == (True, True)
        await ask_iris(s, 0)
        assert executions(s.executors[0], "iris") >= 1


@pytest.mark.timeout(90)
async def test_an_executor_that_appears_later_is_used_without_a_restart(tmp_path: Path, demo: dict[str, DemoModel]) -> None:
    port = free_port()
    with_late = lambda addrs: ",".join([*addrs, f"localhost:{port}"])  # noqa: E731
    async with running_stack(tmp_path, demo, load=("iris",), executor_addrs=with_late) as s:
        first, late_peer = s.core.executors
        assert first.healthy and not late_peer.healthy
        late = InProcessExecutor("executor-late", tmp_path / "late", s.settings.registry_addr, port=port)
        await late.start()
        try:
            await s.executors[0].stop()  # the first one goes: only the one that appeared can serve
            await until_peers(s, lambda: late_peer.healthy and not first.healthy)
            await ask_iris(s, 1, timeout=20)
            assert executions(late, "iris") >= 1
        finally:
            await late.stop()
