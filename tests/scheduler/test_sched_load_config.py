"""RepositoryModelLoad with a `config` override: validated, applied to serving, unsupported refused."""

from __future__ import annotations

import asyncio
import json

import grpc
import numpy as np
import pytest
from grpc import aio
from sched_testkit import Stack, infer_request
from test_sched_errors import expect_error

from mlos.inference import grpc_service_pb2 as pb
from mlos.scheduler.v1 import scheduler_pb2 as spb

pytestmark = pytest.mark.asyncio(loop_scope="session")


def load_request(name: str, **params: pb.ModelRepositoryParameter) -> pb.RepositoryModelLoadRequest:
    req = pb.RepositoryModelLoadRequest(model_name=name)
    for key, value in params.items():
        req.parameters[key].CopyFrom(value)
    return req


def config_param(config) -> pb.ModelRepositoryParameter:
    return pb.ModelRepositoryParameter(string_param=config if isinstance(config, str) else json.dumps(config))


async def load_error(stack: Stack, req: pb.RepositoryModelLoadRequest, code: grpc.StatusCode) -> str:
    with pytest.raises(aio.AioRpcError) as err:
        await stack.stub.RepositoryModelLoad(req, timeout=30)
    assert err.value.code() == code, err.value.details()
    return err.value.details()


async def queue_stats(stack: Stack, name: str) -> spb.QueueStats:
    (stats,) = (await stack.admin.GetQueueStats(spb.GetQueueStatsRequest(model_name=name))).queues
    return stats


async def test_override_changes_config_and_serving(stack: Stack) -> None:
    name = "iris_cfg"
    await stack.registry.register(name, stack.models["iris"].path)
    override = {"name": name, "max_batch_size": 2, "dynamic_batching": {"max_queue_delay_microseconds": "150"}}
    await stack.stub.RepositoryModelLoad(load_request(name, config=config_param(override)), timeout=30)

    config = (await stack.stub.ModelConfig(pb.ModelConfigRequest(name=name))).config
    assert config.max_batch_size == 2 and config.dynamic_batching.max_queue_delay_microseconds == 150
    stats = await queue_stats(stack, name)
    assert (stats.max_batch_size, stats.max_queue_delay_us) == (2, 150)

    msg = await expect_error(stack, infer_request(name, {"X": np.ones((3, 4), np.float32)}), grpc.StatusCode.INVALID_ARGUMENT)
    assert "max_batch_size 2" in msg
    await asyncio.gather(*(stack.stub.ModelInfer(infer_request(name, {"X": np.ones((1, 4), np.float32)}), timeout=30)
                           for _ in range(12)))
    stats = await queue_stats(stack, name)
    assert stats.requests >= 12 and stats.mean_batch_size <= 2.0

    # A load without `config` goes back to the registered config, as in Triton.
    await stack.stub.RepositoryModelLoad(load_request(name), timeout=30)
    config = (await stack.stub.ModelConfig(pb.ModelConfigRequest(name=name))).config
    assert config.max_batch_size == 8
    await stack.stub.ModelInfer(infer_request(name, {"X": np.ones((3, 4), np.float32)}), timeout=30)


async def test_batching_impossible_for_fixed_first_dim(stack: Stack) -> None:
    msg = await load_error(stack, load_request("silero_vad", config=config_param({"max_batch_size": 4})),
                           grpc.StatusCode.INVALID_ARGUMENT)
    assert "max_batch_size 4" in msg and "first dimension" in msg, msg
    config = (await stack.stub.ModelConfig(pb.ModelConfigRequest(name="silero_vad"))).config
    assert config.max_batch_size == 0


@pytest.mark.parametrize("config,field", [
    ("{not json", "JSON"),
    ("[1, 2]", "JSON object"),
    ({"instance_group": [{"count": 2}]}, "'instance_group'"),
    ({"dynamic_batching": {"preferred_batch_size": [4]}}, "dynamic_batching.'preferred_batch_size'"),
    ({"dynamic_batching": 5}, "dynamic_batching"),
    ({"max_batch_size": "many"}, "max_batch_size"),
    ({"max_batch_size": True}, "max_batch_size"),
    ({"max_batch_size": -1}, "max_batch_size must be between 0"),
    ({"max_batch_size": 10**9}, "max_batch_size must be between 0"),
    ({"dynamic_batching": {"max_queue_delay_microseconds": 10**12}}, "max_queue_delay_microseconds"),
    ({"name": "other"}, "name 'other'"),
])
async def test_bad_config_is_invalid_and_names_the_field(stack: Stack, config, field: str) -> None:
    msg = await load_error(stack, load_request("iris", config=config_param(config)), grpc.StatusCode.INVALID_ARGUMENT)
    assert field in msg, msg
    assert (await stack.stub.ModelConfig(pb.ModelConfigRequest(name="iris"))).config.max_batch_size == 8


async def test_file_parameters_are_refused(stack: Stack) -> None:
    req = load_request("iris", **{"file:1/model.onnx": pb.ModelRepositoryParameter(bytes_param=b"\x08\x01")})
    msg = await load_error(stack, req, grpc.StatusCode.UNIMPLEMENTED)
    assert "'file:1/model.onnx'" in msg


@pytest.mark.parametrize("key,param,expect", [
    ("colour", pb.ModelRepositoryParameter(string_param="red"), "'colour'"),
    ("config", pb.ModelRepositoryParameter(int64_param=4), "must be a string"),
])
async def test_other_parameters_are_invalid(stack: Stack, key: str, param, expect: str) -> None:
    msg = await load_error(stack, load_request("iris", **{key: param}), grpc.StatusCode.INVALID_ARGUMENT)
    assert expect in msg, msg
