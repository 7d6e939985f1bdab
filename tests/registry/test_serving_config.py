"""Priority levels, preferred batch sizes and the warm-up plan: kept by the registry, refused when they cannot hold
(INVALID_ARGUMENT through real gRPC, nothing stored), and the registry goes on serving."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc import aio
from registry_testkit import Served

from mlos.registry.v1 import registry_pb2, registry_pb2_grpc
from mlos_common.errors import InvalidArgument, NotFound
from mlos_registry.core import MAX_PRIORITY_LEVELS
from mlos_registry.domain import ServingConfig


async def test_levels_and_preferred_sizes_round_trip(served: Served, dynamic_onnx: Path) -> None:
    config = ServingConfig(max_batch_size=8, priority_levels=5, default_priority=5, preferred_batch_sizes=(4, 8))
    mv = await served.client.register("m", dynamic_onnx, config=config)
    assert (mv.config.priority_levels, mv.config.default_priority, mv.config.preferred_batch_sizes) == (5, 5, (4, 8))
    assert (await served.client.get("m")).config == mv.config
    top = await served.client.register("top", dynamic_onnx, config=ServingConfig(priority_levels=MAX_PRIORITY_LEVELS))
    assert top.config.priority_levels == MAX_PRIORITY_LEVELS
    planned = await served.client.register("planned", dynamic_onnx, config=ServingConfig(max_batch_size=8,
                                                                                         warmup_batch_sizes=(2, 8)))
    assert (await served.client.get("planned")).config.warmup_batch_sizes == (2, 8) == planned.config.warmup_batch_sizes


@pytest.mark.parametrize(
    "config,words",
    [
        (ServingConfig(priority_levels=MAX_PRIORITY_LEVELS + 1), f"at most {MAX_PRIORITY_LEVELS}"),
        (ServingConfig(priority_levels=3, default_priority=4), "default_priority 4 is outside"),
        (ServingConfig(max_batch_size=8, preferred_batch_sizes=(0,)), "preferred batch size 0"),
        (ServingConfig(max_batch_size=8, preferred_batch_sizes=(4, 9)), "preferred batch size 9"),
        (ServingConfig(preferred_batch_sizes=(16,)), "preferred batch size 16"),  # over the default max of 8
        (ServingConfig(max_batch_size=8, warmup_batch_sizes=(0, 4)), "warmup batch size 0"),
        (ServingConfig(max_batch_size=8, warmup_batch_sizes=(4, 9)), "warmup batch size 9 of model 'm' must be between"),
    ],
)
async def test_impossible_config_is_invalid(served: Served, dynamic_onnx: Path, config, words) -> None:
    with pytest.raises(InvalidArgument) as err:
        await served.client.register("m", dynamic_onnx, config=config)
    assert words in err.value.message
    with pytest.raises(NotFound):
        await served.client.get("m")  # nothing stored
    assert (await served.client.register("ok", dynamic_onnx)).version == 1


async def test_preferred_sizes_on_a_model_that_cannot_batch(served: Served, fixed_onnx: Path) -> None:
    with pytest.raises(InvalidArgument, match="max_batch_size 0"):
        await served.client.register("fixed", fixed_onnx, config=ServingConfig(preferred_batch_sizes=(1,)))


async def test_raw_stub_gets_invalid_argument(served: Served, dynamic_onnx: Path) -> None:
    request = registry_pb2.RegisterModelRequest(name="m", path=str(dynamic_onnx))
    request.config.priority_levels = 1000
    async with aio.insecure_channel(served.addr) as channel:
        with pytest.raises(aio.AioRpcError) as info:
            await registry_pb2_grpc.RegistryStub(channel).RegisterModel(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "priority_levels" in info.value.details()


async def test_a_warmup_plan_on_a_model_that_cannot_batch(served: Served, fixed_onnx: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"warmup_batch_sizes \[2\] need batching; model 'f' has max_batch_size 0"):
        await served.client.register("f", fixed_onnx, config=ServingConfig(warmup_batch_sizes=(2,)))
