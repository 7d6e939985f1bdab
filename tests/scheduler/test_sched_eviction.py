"""A model the executor evicted for room comes back on its next request through the front door:
the executor answers "not loaded", the scheduler loads it again there and the request is served."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from memory_testkit import sized_model, table_model
from sched_testkit import infer_request, response_arrays, running_stack

from mlos.inference import grpc_service_pb2 as pb
from mlos_cli.demo import DemoModel
from mlos_executor.budget import MB


async def test_an_evicted_model_is_reloaded_on_its_next_request(tmp_path: Path, demo: dict[str, DemoModel]) -> None:
    small = tmp_path / "small.onnx"
    small.write_bytes(table_model(1024, seed=1).SerializeToString())
    async with running_stack(tmp_path, {}, load=("small",), extra={"small": small},
                             executor_settings=[{"memory_budget_mb": 64}]) as s:
        ex = s.executor_core
        x = {"X": np.array([7], np.int64)}
        want = response_arrays(await s.stub.ModelInfer(infer_request("small", x), timeout=30))["Y"]
        held = ex.models[("small", 1)].memory
        assert held is not None
        await s.registry.register("big", sized_model(tmp_path / "big.onnx", 64 - held.bytes / MB / 2))
        await s.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="big"), timeout=60)
        assert ("small", 1) not in ex.models and ex.evictor.recent[0].key == ("small", 1)  # room for big

        got = response_arrays(await s.stub.ModelInfer(infer_request("small", x), timeout=30))["Y"]
        np.testing.assert_array_equal(got, want)
        assert ("small", 1) in ex.models
        addr = s.core.executors[0].addr
        retried = s.metrics.get_sample_value("mlos_scheduler_batch_retries_total",
                                             {"executor": addr, "reason": "not_loaded"})
        assert retried == 1
