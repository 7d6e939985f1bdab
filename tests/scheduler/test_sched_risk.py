"""Failure risk in routing, through real gRPC over two real executors: a risky holder gets no
batches while an executor that is not risky can serve the model (the model is loaded there in the
background), a model is never left without an executor, and new models are placed away from risk.
Scores are set in the table here; test_predictor_link.py feeds them from a real predictor."""

from __future__ import annotations

from pathlib import Path

import pytest
from predictor_testkit import poll
from sched_testkit import InProcessExecutor, Stack, assert_matches, infer_request, ort_run, response_arrays, running_stack

from mlos_cli.demo import DemoModel
from mlos_scheduler.executors import ExecutorPort
from mlos_scheduler.risk import entity_of
from mlos_scheduler.scores import Score

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOWHERE = "127.0.0.1:9"  # the link is not started: the test sets the scores


def executions(executor: InProcessExecutor, name: str) -> int:
    loaded = executor.core.models.get((name, 1))
    return loaded.executions if loaded is not None else 0


async def ask_iris(stack: Stack, seed: int) -> None:
    iris = stack.models["iris"]
    feeds = iris.sample_inputs(batch=2, seed=seed)
    resp = await stack.stub.ModelInfer(infer_request("iris", feeds), timeout=20)
    assert_matches(response_arrays(resp), ort_run(iris, feeds))


def risky(stack: Stack, *executors: ExecutorPort) -> None:
    """Failure scores: the given executors at 0.9, every other at 0.1; then the review the feed runs."""
    table = stack.core.scores
    assert table is not None and stack.core.dispatcher.risk is not None
    now = table.clock()
    table.replace("failure", [
        Score(entity_of(e), 0.9 if e in executors else 0.1, "error_rate 0.6" if e in executors else "", 0, now)
        for e in stack.core.executors
    ])
    stack.core.dispatcher.risk.review(stack.core.executors)


async def test_a_risky_executor_gets_no_batches_while_another_can_serve(tmp_path: Path, demo: dict[str, DemoModel]) -> None:
    async with running_stack(tmp_path, demo, load=("iris",), executors=2, predictor_addr=NOWHERE, start_link=False) as s:
        d = s.core.dispatcher
        [first] = d.placed[("iris", 1)]  # placed on one executor at first
        second = next(e for e in s.core.executors if e is not first)
        ex_first, ex_second = (s.executors[s.core.executors.index(e)] for e in (first, second))
        assert first.executor_id == ex_first.executor_id  # known from its Status since the load

        risky(s, first)
        await ask_iris(s, 0)  # still served by the risky holder; it starts loading the model on the other

        async def moved() -> bool:
            return second in d.placed[("iris", 1)]

        await poll(moved, what="iris to be loaded on the executor that is not risky")
        before = executions(ex_first, "iris")
        for seed in range(1, 9):
            await ask_iris(s, seed)
        assert executions(ex_first, "iris") == before and executions(ex_second, "iris") >= 8
        avoided = s.metrics.get_sample_value(
            "mlos_scheduler_risky_executor_avoided_batches_total", {"executor": first.addr}
        )
        assert avoided is not None and avoided >= 8
        assert s.metrics.get_sample_value("mlos_scheduler_executor_failure_probability", {"executor": first.addr}) == 0.9

        risky(s, first, second)  # both risky: routed as before, never left without an executor
        served = executions(ex_first, "iris") + executions(ex_second, "iris")
        for seed in range(9, 13):
            await ask_iris(s, seed)
        assert executions(ex_first, "iris") + executions(ex_second, "iris") == served + 4

        risky(s, first)  # a new model goes to the executor that is not risky, though the first comes first
        await s.registry.register("iris_new", s.models["iris"].path)
        await ask_iris_named(s, "iris_new")
        assert d.placed[("iris_new", 1)] == [second]


async def ask_iris_named(stack: Stack, name: str) -> None:
    feeds = stack.models["iris"].sample_inputs(batch=1, seed=99)
    resp = await stack.stub.ModelInfer(infer_request(name, feeds), timeout=20)
    assert_matches(response_arrays(resp), ort_run(stack.models["iris"], feeds))


async def test_without_risk_the_first_executor_takes_new_models(tmp_path: Path, demo: dict[str, DemoModel]) -> None:
    """The baseline of the placement check above: both executors hold iris, none is risky, and the
    new model goes to the first."""
    async with running_stack(tmp_path, demo, load=("iris",), executors=2, predictor_addr=NOWHERE, start_link=False) as s:
        d = s.core.dispatcher
        [first] = d.placed[("iris", 1)]
        second = next(e for e in s.core.executors if e is not first)
        await d.replicate(s.core.served[("iris", 1)].model, second, 30)
        risky(s)
        await s.registry.register("iris_new", s.models["iris"].path)
        await ask_iris_named(s, "iris_new")
        assert d.placed[("iris_new", 1)] == [first]
