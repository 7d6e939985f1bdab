"""Placement over executors with memory budgets, through real gRPC: an executor that refuses a load
for lack of room (RESOURCE_EXHAUSTED) passes it to the next; when all refuse, the client hears why."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc import aio
from sched_testkit import running_stack

from mlos.inference import grpc_service_pb2 as pb
from mlos_cli.demo import DemoModel

pytestmark = pytest.mark.asyncio(loop_scope="session")

TINY = {"memory_budget_mb": 1}  # below the memory prior's 8 MB for any model


async def test_a_load_refused_for_memory_goes_to_another_executor(tmp_path: Path, demo: dict[str, DemoModel]) -> None:
    async with running_stack(tmp_path, demo, load=(), executors=2, executor_settings=[TINY, {}]) as s:
        a, b = s.core.executors
        await s.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="iris"), timeout=60)
        assert s.core.dispatcher.placed[("iris", 1)] == [b]  # a came first (both idle, none held) and refused
        full, roomy = s.executors
        assert not full.core.models and ("iris", 1) in roomy.core.models
        ready = await s.stub.ModelReady(pb.ModelReadyRequest(name="iris"))
        assert ready.ready


async def test_when_every_executor_refuses_the_client_gets_resource_exhausted(
    tmp_path: Path, demo: dict[str, DemoModel]
) -> None:
    async with running_stack(tmp_path, demo, load=(), executors=2, executor_settings=[TINY, TINY]) as s:
        with pytest.raises(aio.AioRpcError) as err:
            await s.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="iris"), timeout=60)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
        details = err.value.details()
        for executor in s.core.executors:
            assert executor.addr in details, details
        assert "memory budget" in details and "'iris' v1" in details
