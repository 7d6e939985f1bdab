"""Warm-up plans and explicit prefetch through the front door: `mlos models prefetch` loads a model
on the executor and runs its registered warm-up plan before any traffic, so its first request
loads nothing; a model nobody prefetched is loaded by its first request; an unknown one is
NOT_FOUND. (Evidence by the executor's own state, not by timing: timings live in the benches.)"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from sched_testkit import infer_request, running_stack

from mlos_cli import models_cmd
from mlos_common.errors import NotFound
from mlos_registry.domain import ServingConfig


async def test_prefetch_warms_by_plan_and_a_cold_model_loads_on_its_first_request(tmp_path: Path, demo) -> None:
    iris = demo["iris"]
    async with running_stack(tmp_path, {"iris": iris}, load=()) as stack:
        await stack.registry.register("planned", iris.path, config=ServingConfig(max_batch_size=8,
                                                                                 warmup_batch_sizes=(2, 8)))
        core = stack.executors[0].core
        assert await models_cmd.models_prefetch(argparse.Namespace(name="planned", addr=stack.addr)) == 0
        planned = core.models[("planned", 1)]
        assert [w.batch_size for w in planned.warmup] == [2, 8] and planned.executions == 0
        await stack.stub.ModelInfer(infer_request("planned", iris.sample_inputs(2)))
        assert core.models[("planned", 1)] is planned and planned.executions == 1  # no load on the request path

        assert ("iris", 1) not in core.models  # cold: nobody prefetched it
        await stack.stub.ModelInfer(infer_request("iris", iris.sample_inputs(1)))
        assert core.models[("iris", 1)].executions == 1

        with pytest.raises(NotFound, match="nope"):
            await models_cmd.models_prefetch(argparse.Namespace(name="nope", addr=stack.addr))
