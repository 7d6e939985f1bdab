"""Training in a child process (trainproc.py) through real gRPC: it trains there, a training past
its timeout or whose process dies is reported while the service answers on, the memory cap holds,
and closing the service stops the process."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from predictor_testkit import serve_engine
from pydantic import ValidationError

from mlos.predictor.v1 import predictor_pb2
from mlos_predictor.client import PredictorClient
from mlos_predictor.config import PredictorSettings
from mlos_predictor.convert import telemetry_from_proto
from mlos_predictor.engine import Engine
from mlos_predictor.intake import Intake
from mlos_predictor.kinds import SPECS
from mlos_predictor.latency import LatencyBook
from mlos_predictor.loop import Learner
from mlos_predictor.models import OnnxModel
from mlos_predictor.rowstore import Rows
from mlos_predictor.trainproc import TrainingFailed, TrainingPool, TrainJob

MEMORY_ROW = [40.0, 2.0, 50.0, 4.0, 1.0, 4.0]  # file MB, parameters (millions), nodes, I/O KB per item, batch


@pytest.fixture
async def trainable(engine: Engine, simulation):
    """trainable(**learner_settings) -> (address, learner): a real predictor over `engine` whose
    books hold the simulation's rows and whose learner the test can look into."""
    made: list[tuple[object, Learner]] = []

    async def make(**settings) -> tuple[str, Learner]:
        intake = Intake(LatencyBook())
        for batch in simulation.batches:
            intake.ingest(telemetry_from_proto(batch))
        learner = Learner(engine.slots, intake, **settings)
        running = await serve_engine(engine, intake, learner)
        made.append((running, learner))
        return running.addr, learner

    yield make
    for running, learner in made:
        await running.server.stop(None)  # type: ignore[attr-defined]
        await learner.close()


async def worker_of(learner: Learner, poll_until) -> int:
    """The training process's id once it is started."""

    async def started() -> bool:
        return bool(learner.pool.worker_pids())

    await poll_until(started, 30.0, "the training process to start")
    (pid,) = learner.pool.worker_pids()
    return pid


def gone(pid: int):
    async def check() -> bool:
        return not Path(f"/proc/{pid}").exists()  # reaped, not merely dead

    return check


async def test_training_runs_in_a_capped_niced_child_that_is_kept(trainable) -> None:
    addr, learner = await trainable()
    async with PredictorClient(addr, timeout_s=120) as c:
        (outcome,) = await c.train("memory")
        (pid,) = learner.pool.worker_pids()
        (value,) = await c.predict_batch("memory", [MEMORY_ROW])
    assert outcome.replaced and outcome.model.source == "trained", outcome.reason
    assert pid != os.getpid()
    assert "multiprocessing.spawn" in Path(f"/proc/{pid}/cmdline").read_bytes().decode()  # spawned, not forked
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    assert int(stat[1]) == os.getpid() and int(stat[16]) == 10  # our child, nice 10
    (cap,) = [line for line in Path(f"/proc/{pid}/limits").read_text().splitlines() if line.startswith("Max address")]
    assert cap.split()[3] != "unlimited"
    served = learner.slots["memory"].model  # the child's ONNX graph, in a session of this process
    assert isinstance(served, OnnxModel) and served.onnx_bytes[:2] == b"\x08\x08"  # ModelProto, ir_version 8
    assert value.value == pytest.approx(float(served.predict(np.array([MEMORY_ROW]))[0]), rel=1e-6)
    (again,) = await learner.train(["memory"])
    assert again.trained_pid == pid  # the same worker trains the next round


async def test_a_training_past_its_timeout_is_reported_and_the_service_answers(trainable, poll_until) -> None:
    addr, learner = await trainable()
    async with PredictorClient(addr, timeout_s=120) as c:
        (warm,) = await c.train("memory")  # the worker is up: the next training times out while fitting
        pid = await worker_of(learner, poll_until)
        learner.train_timeout_s = 0.05
        (late,) = await c.train("latency")
        (value,) = await c.predict_batch("latency", [[2.0, 4.0, 4.0, 0.0, 7.0]])
        info = {m.kind: m for m in await c.model_info()}
    assert warm.replaced
    assert not late.replaced and late.reason == (
        "training failed: it took longer than 0.05 s (MLOS_PREDICTOR_TRAIN_TIMEOUT_S); its process was stopped and "
        "the next training starts a fresh one"
    )
    assert (info["latency"].source, info["memory"].source) == ("prior", "trained")
    assert value.value == pytest.approx(float(SPECS["latency"].prior(np.array([[2.0, 4.0, 4.0, 0.0, 7.0]]))[0]))
    await poll_until(gone(pid), 10.0, "the timed-out training process to be reaped")
    assert learner.pool.worker_pids() == []


async def test_a_killed_training_process_is_reported_and_the_next_training_succeeds(trainable, poll_until) -> None:
    addr, learner = await trainable()
    async with PredictorClient(addr, timeout_s=120) as c:
        training = asyncio.create_task(c.train("latency"))
        pid = await worker_of(learner, poll_until)
        os.kill(pid, signal.SIGKILL)
        (killed,) = await training
        (info,) = await c.model_info("latency")
        (retried,) = await c.train("latency")
    assert not killed.replaced and killed.reason.startswith(
        "training failed: the training process died (killed by signal 9 (SIGKILL); it may map 2048 MB"
    ), killed.reason
    assert info.source == "prior"
    assert retried.replaced and retried.model.source == "trained", retried.reason
    assert learner.pool.worker_pids() != [pid]


async def test_a_cancelled_train_call_stops_its_training_process(trainable, poll_until) -> None:
    addr, learner = await trainable()
    async with PredictorClient(addr, timeout_s=120) as c:
        call = c.stub.Train(predictor_pb2.TrainRequest(kind="threat"))
        pid = await worker_of(learner, poll_until)
        call.cancel()
        await poll_until(gone(pid), 10.0, "the cancelled training's process to be reaped")
        (info,) = await c.model_info("threat")
    assert learner.pool.worker_pids() == [] and info.source == "prior"


async def test_closing_stops_a_training_process(trainable, poll_until) -> None:
    addr, learner = await trainable()
    training = asyncio.create_task(learner.train(["threat"]))
    pid = await worker_of(learner, poll_until)
    await learner.close()
    (outcome,) = await training
    assert outcome.reason == "training failed: the predictor stopped while it trained; its process was stopped"
    assert not Path(f"/proc/{pid}").exists()  # close() waited until it was reaped
    (after,) = await learner.train(["memory"])
    assert after.reason == "training failed: the training process is closed: the predictor is stopping"


async def test_the_memory_cap_fails_a_training_that_needs_more() -> None:
    """16 MB beyond its libraries cannot hold 40 MB of rows: the training fails, the reason names
    the setting; the pool trains again afterwards."""
    n = 1_000_000
    rows = Rows(np.ones((n, 5)), np.ones(n), np.arange(n, dtype=np.int64), ("m",) * n)
    pool = TrainingPool(memory_limit_mb=16)
    try:
        with pytest.raises(TrainingFailed, match="MLOS_PREDICTOR_TRAIN_MEMORY_LIMIT_MB") as failed:
            await pool.train(TrainJob("latency", rows, None, 200, 0, 0), 120.0)
        assert "out of memory" in str(failed.value) or "died" in str(failed.value)
        small = rows.take(slice(0, 10))
        reply = await pool.train(TrainJob("latency", small, None, 200, 0, 0), 120.0)
    finally:
        await pool.close()
    assert reply.reason == "10 labelled rows; training needs 200" and reply.pid != os.getpid()


def test_training_limits_are_settings() -> None:
    with pytest.raises(ValidationError, match="train_timeout_s"):
        PredictorSettings(train_timeout_s=0)
    with pytest.raises(ValidationError, match="train_memory_limit_mb"):
        PredictorSettings(train_memory_limit_mb=-1)


async def test_the_service_passes_its_limits_to_the_learner(predictor_factory, simulation) -> None:
    """Through server.start: a timeout from the settings fails every kind, the service answers on."""
    predictor = await predictor_factory(train_timeout_s=0.001)
    async with PredictorClient(predictor.addr, timeout_s=120) as c:
        ack = await c.stub.ReportTelemetry(_stream(simulation))
        outcomes = await c.train()
        (value,) = await c.predict_batch("memory", [MEMORY_ROW])
    assert ack.rejected == 0 and len(outcomes) == 5
    assert {o.reason.split(" (")[0] for o in outcomes} == {"training failed: it took longer than 0.001 s"}
    assert value.value == pytest.approx(float(SPECS["memory"].prior(np.array([MEMORY_ROW]))[0]))


async def _stream(simulation):
    for batch in simulation.batches:
        yield batch
