"""A tensor model's serving config `instance_count` and `threads` reach the executor through the
scheduler's load (real registry, scheduler and executor in process): its sessions are what the
registry says, and it answers like ONNX Runtime alone."""

from __future__ import annotations

import numpy as np
import pytest
from sched_testkit import Stack, assert_matches, infer_request, ort_run, response_arrays

from mlos.inference import grpc_service_pb2 as pb
from mlos_registry.domain import ServingConfig

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_instances_and_threads_travel_to_the_executor(stack: Stack) -> None:
    iris = stack.models["iris"]
    mv = await stack.registry.register("iris_x2", iris.path, ServingConfig(max_batch_size=8, instance_count=2, threads=1))
    await stack.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="iris_x2"), timeout=60)
    loaded = stack.executor_core.get("iris_x2", mv.version)
    assert (loaded.instances, loaded.threads, len(loaded.model.sessions)) == (2, 1, 2)
    x = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], np.float32)
    reply = await stack.stub.ModelInfer(infer_request("iris_x2", {"X": x}), timeout=30)
    assert_matches(response_arrays(reply), ort_run(iris, {"X": x}))
