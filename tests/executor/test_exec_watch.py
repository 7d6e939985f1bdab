"""The executor follows the registry's model view: prefetch resolves "latest" from it (one
GetModel only for a model the view does not hold), and a version deleted from the registry is
unloaded once no work is in flight. A real registry and a real executor core on loopback; waits are
on the view's revision and on the unloads the follow started."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator

import numpy as np
import pytest
from exec_testkit import ExecutorServed, ModelFiles, RegistryServed, StartExecutor
from prometheus_client import CollectorRegistry, generate_latest

from mlos_common.errors import NotFound
from mlos_executor.peers import RegistryPeer
from mlos_executor.registry_follow import RegistryFollow
from mlos_executor.server import follow_registry

WAIT_S = 30.0


@pytest.fixture
async def followed(
    registry: RegistryServed, start_executor: StartExecutor
) -> AsyncIterator[tuple[ExecutorServed, RegistryFollow, CollectorRegistry]]:
    """An executor (one execution slot, nothing run inline) whose core follows the registry."""
    ex = await start_executor(execution_slots=1, inline_run_us=0)
    peer = RegistryPeer(registry.addr)
    metrics = CollectorRegistry()
    follow, close = follow_registry(ex.settings, ex.core, peer, metrics)
    yield ex, follow, metrics
    await close()
    await peer.close()


async def caught_up(registry: RegistryServed, follow: RegistryFollow) -> None:
    await follow.view.wait_for((await registry.client.listing())[1], WAIT_S)


async def test_prefetch_resolves_latest_from_the_view(registry: RegistryServed, followed, model_files: ModelFiles) -> None:
    _, follow, metrics = followed
    await registry.client.register("plus", model_files.plus_one)
    await caught_up(registry, follow)
    assert (await follow.latest("plus")).version == 1
    second = await registry.client.register("plus", model_files.two_outputs)
    await caught_up(registry, follow)
    target = await follow.latest("plus")
    assert (target.version, target.sha256) == (2, second.sha256)
    assert follow.view.lookups == {"view": 2, "registry": 0}

    with pytest.raises(NotFound, match="'nothing' is not registered"):
        await follow.latest("nothing")  # unknown to the view: asks the registry once
    assert follow.view.lookups["registry"] == 1
    text = generate_latest(metrics).decode()
    assert "mlos_registry_watch_synced 1.0" in text and 'mlos_registry_watch_lookups_total{source="registry"} 1.0' in text


async def test_deleted_version_is_unloaded_once_its_work_is_done(
    registry: RegistryServed, followed, model_files: ModelFiles, caplog: pytest.LogCaptureFixture
) -> None:
    ex, follow, metrics = followed
    mv = await registry.client.register("plus", model_files.plus_one)
    await ex.core.load("plus", 1, mv.sha256)
    await caught_up(registry, follow)

    # Hold the one execution slot, so a batch of "plus" is in flight while its deletion arrives.
    gate = threading.Event()
    loop = asyncio.get_running_loop()
    holder = loop.run_in_executor(ex.core._pool, gate.wait)
    running = loop.create_task(ex.core.execute("plus", 1, {"X": np.zeros((2, 3), np.float32)}, []))
    caplog.set_level(logging.INFO, logger="mlos_executor.registry_follow")
    try:
        await registry.client.delete("plus")
        await caught_up(registry, follow)
        assert ex.core.models[("plus", 1)].in_flight == 1, "still loaded while its batch runs"
    finally:
        gate.set()
    await holder
    outputs, _ = await running
    assert np.array_equal(outputs[0][1], np.ones((2, 3), np.float32)), "the batch in flight finished"
    await follow.settled()
    assert ("plus", 1) not in ex.core.models and follow.deleted_unloads == 1
    assert "unloaded plus v1: it was deleted from the registry" in caplog.text
    assert "mlos_executor_deleted_unloads_total 1.0" in generate_latest(metrics).decode()
