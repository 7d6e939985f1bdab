"""The scheduler follows the registry's WatchModels stream (its model view): a model registered
after start is served without a restart and without a GetModel on the request path, a deleted
version stops being listed and served, "latest" and aliases move live, and a registry that is
down at start leaves a scheduler that starts and keeps retrying. Waits are on the view's revision."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
from predictor_testkit import free_port
from prometheus_client import generate_latest
from sched_testkit import Stack, expect_error, infer_request, running_stack
from slow_models import build_slow_model

from mlos.inference import grpc_service_pb2 as pb
from mlos_cli.demo import DemoModel
from mlos_common.bootstrap import ServerParts
from mlos_common.errors import Unavailable
from mlos_scheduler.config import SchedulerSettings
from mlos_scheduler.server import build_core

pytestmark = pytest.mark.asyncio(loop_scope="session")

WAIT_S = 30.0
WIDTH = 8


@pytest.fixture(scope="module")
def versions_dir(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three ONNX files with one signature (x [N, 8] FP32 -> y) and different bytes and answers."""
    root = tmp_path_factory.mktemp("watch-models")
    return [build_slow_model(root / f"v{depth}.onnx", WIDTH, depth) for depth in (1, 2, 3)]


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, demo: dict[str, DemoModel]) -> AsyncIterator[Stack]:
    """A stack whose executor runs every batch on its worker threads (none inline), so a test can hold them."""
    async with running_stack(tmp_path_factory.mktemp("watch"), {"iris": demo["iris"]}, load=(),
                             executor_settings=[{"inline_run_us": 0}]) as s:
        yield s


async def caught_up(stack: Stack) -> None:
    """Waits until the scheduler's view has applied everything the registry has done so far."""
    assert stack.catalog is not None and stack.catalog.view is not None
    await stack.catalog.view.wait_for((await stack.registry.listing())[1], WAIT_S)
    await stack.catalog.retired()


def request(model: str, version: str = "") -> pb.ModelInferRequest:
    return infer_request(model, {"x": np.ones((1, WIDTH), np.float32)}, version=version)


async def answered_by(stack: Stack, model: str, version: str = "") -> str:
    return (await stack.stub.ModelInfer(request(model, version), timeout=WAIT_S)).model_version


async def test_registered_after_start_is_served_from_the_view(stack: Stack, versions_dir: list[Path]) -> None:
    await stack.registry.register("fresh", versions_dir[0])
    await caught_up(stack)
    view = stack.catalog.view
    asked = view.lookups["registry"]
    assert await answered_by(stack, "fresh") == "1"
    meta = await stack.stub.ModelMetadata(pb.ModelMetadataRequest(name="fresh"), timeout=WAIT_S)
    assert meta.versions == ["1"]
    assert view.lookups["registry"] == asked, "a model the view holds costs no GetModel"
    text = generate_latest(stack.metrics).decode()
    assert "mlos_registry_watch_connected 1.0" in text and 'mlos_registry_watch_lookups_total{source="view"}' in text


async def test_unknown_to_the_view_asks_the_registry_once(stack: Stack) -> None:
    view = stack.catalog.view
    asked = view.lookups["registry"]
    details = await expect_error(stack, request("never_registered"), grpc.StatusCode.NOT_FOUND)
    assert "never_registered" in details and "not registered" in details
    assert view.lookups["registry"] == asked + 1


async def test_deleted_version_stops_being_listed_and_served(stack: Stack, versions_dir: list[Path]) -> None:
    await stack.registry.register("doomed", versions_dir[0])
    await caught_up(stack)
    assert await answered_by(stack, "doomed") == "1"
    assert ("doomed", 1) in stack.core.served

    await stack.registry.delete("doomed")
    await caught_up(stack)
    assert ("doomed", 1) not in stack.core.served and "doomed" not in stack.core.latest
    details = await expect_error(stack, request("doomed"), grpc.StatusCode.NOT_FOUND)
    assert "'doomed' is not registered" in details
    index = await stack.stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=WAIT_S)
    assert "doomed" not in {m.name for m in index.models}
    assert not any(name == "doomed" for name, _ in stack.executor_core.models), "its executor unloaded it"


async def test_requests_in_flight_when_deleted_finish(stack: Stack, versions_dir: list[Path]) -> None:
    await stack.registry.register("busy", versions_dir[0])
    await caught_up(stack)
    assert await answered_by(stack, "busy") == "1"
    executor = stack.executor_core
    gate = threading.Event()
    loop = asyncio.get_running_loop()
    # Hold every execution slot of the executor: the next batch of "busy" waits there, in flight.
    holders = [loop.run_in_executor(executor._pool, gate.wait) for _ in range(executor.execution_slots)]
    running = loop.create_task(answered_by(stack, "busy"))
    try:
        await stack.registry.delete("busy")
        await stack.catalog.view.wait_for((await stack.registry.listing())[1], WAIT_S)
        assert ("busy", 1) not in stack.core.served, "no new request finds a deleted version"
        details = await expect_error(stack, request("busy"), grpc.StatusCode.NOT_FOUND)
        assert "'busy' is not registered" in details
        assert not running.done()
    finally:
        gate.set()
    await asyncio.gather(*holders)
    assert await running == "1", "the request in flight when the deletion arrived finished"
    await stack.catalog.retired()
    assert ("busy", 1) not in executor.models


async def test_latest_and_aliases_move_live(stack: Stack, versions_dir: list[Path]) -> None:
    await stack.registry.register("moving", versions_dir[0])
    await stack.registry.register("moving", versions_dir[1])
    await stack.registry.set_alias("moving", "prod", 1)
    await caught_up(stack)
    assert await answered_by(stack, "moving") == "2"
    assert await answered_by(stack, "moving", "prod") == "1"

    await stack.registry.set_alias("moving", "prod", 2)
    await stack.registry.register("moving", versions_dir[2])
    await caught_up(stack)
    assert await answered_by(stack, "moving", "prod") == "2"
    assert await answered_by(stack, "moving") == "3", "a new registration becomes the latest without a restart"
    assert await answered_by(stack, "moving", "1") == "1"

    await stack.registry.delete("moving", 3)
    await caught_up(stack)
    assert await answered_by(stack, "moving") == "2", "deleting the latest moves 'latest' back"
    details = await expect_error(stack, request("moving", "canary"), grpc.StatusCode.INVALID_ARGUMENT)
    assert "integer or an alias of model 'moving'" in details and "'canary'" in details


async def test_registry_down_at_start_the_scheduler_still_starts() -> None:
    settings = SchedulerSettings(registry_addr=f"127.0.0.1:{free_port()}", executor_addrs="127.0.0.1:1",
                                 grpc_port=0, metrics_port=-1)
    core, catalog = build_core(settings, ServerParts(), None)
    try:
        assert catalog.follower is not None
        await catalog.follower.wait_until(lambda f: f.reconnects >= 1, WAIT_S)
        assert not catalog.follower.connected and not catalog.view.synced
        with pytest.raises(Unavailable):
            await core.lookup("iris", 0)  # the view knows nothing: one GetModel, which cannot answer
    finally:
        await core.close()
        await catalog.close()
