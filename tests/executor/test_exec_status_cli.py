"""`mlos status` against real executor servers: mode, budget, use, loaded models' memory."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pytest
from exec_testkit import RegistryServed, StartExecutor, tensor
from predictor_testkit import Running, free_port, poll
from prometheus_client import CollectorRegistry

from mlos.predictor.v1 import predictor_pb2
from mlos_cli.status import status
from mlos_executor.config import ExecutorSettings
from mlos_executor.telemetry import ExecutorMetrics, ExecutorTelemetry
from mlos_predictor.client import PredictorClient

MB = 2**20


def args(*executors: str, predictor: str = "", as_json: bool = False) -> argparse.Namespace:
    return argparse.Namespace(executor=list(executors), executors=1, predictor=predictor, json=as_json)


async def test_status_shows_budget_use_and_each_models_memory(
    registry: RegistryServed, start_executor: StartExecutor, model_files, capsys: pytest.CaptureFixture[str]
) -> None:
    ex = await start_executor(memory_budget_mb=256, executor_id="exec-status")
    mv = await registry.client.register("plus", model_files.plus_one)
    await ex.client.load("plus", mv.version, mv.sha256)
    footprint = ex.core.get("plus", mv.version).memory
    assert footprint is not None
    assert await status(args(ex.addr)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["EXECUTOR", "ID", "MODE", "BUDGET", "MB", "USED", "MB", "RSS", "MB", "MODELS"]
    row = out[1].split()
    assert row[:4] == [ex.addr, "exec-status", "userspace", "256.0"] and row[-1] == "1", out
    assert row[4] == f"{footprint.bytes / MB:.1f}"
    assert out[2].strip().startswith(f"plus v1: {footprint.bytes / MB:.1f} MB measured; predicted 8.0 MB by the memory")
    assert out[-1] == "scale hint: none (predictor : no predictor given)"

    assert await status(args(ex.addr, as_json=True)) == 0
    data = json.loads(capsys.readouterr().out)
    [executor] = data["executors"]
    assert executor["memory_budget_bytes"] == 256 * MB and executor["memory_used_bytes"] == footprint.bytes
    assert executor["models"][0]["memory_bytes"] == footprint.bytes


async def test_status_says_which_executor_did_not_answer(
    start_executor: StartExecutor, capsys: pytest.CaptureFixture[str]
) -> None:
    ex = await start_executor(memory_budget_mb=0)
    gone = f"127.0.0.1:{free_port()}"
    assert await status(args(ex.addr, gone, predictor=f"127.0.0.1:{free_port()}")) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[3] == "none"  # no budget
    assert out[2].startswith(gone) and "unreachable (UNAVAILABLE" in out[2], out
    assert out[-1].startswith("scale hint: none (predictor 127.0.0.1:") and "UNAVAILABLE" in out[-1]


async def test_status_shows_the_scale_hint_and_forecasts_from_a_real_predictor(
    registry: RegistryServed, start_executor: StartExecutor, model_files, predictor: Running,
    capsys: pytest.CaptureFixture[str],
) -> None:
    telemetry = ExecutorTelemetry(ExecutorSettings(predictor_addr=predictor.addr), ExecutorMetrics(CollectorRegistry()))
    assert telemetry.streamer is not None
    try:
        ex = await start_executor(sink=telemetry.execution)
        mv = await registry.client.register("plus", model_files.plus_one)
        await ex.client.load("plus", mv.version, mv.sha256)
        for _ in range(3):  # latency telemetry: what one request of plus costs
            await ex.client.execute("plus", mv.version, [tensor("X", np.ones((1, 3), np.float32))], [])
        telemetry.streamer.offer(predictor_pb2.RateSample(  # what the front door reports: 5 requests/s
            model_name="plus", unix_ms=int(time.time() * 1000), window_s=10, requests=50))
        async with PredictorClient(predictor.addr) as client:
            async def hinted() -> bool:
                return (await client.scores("workload")).executors_needed >= 1

            await poll(hinted, 10, "the predictor's scale hint")
            [forecast] = (await client.scores("workload")).scores
    finally:
        await telemetry.streamer.close()
    assert await status(args(ex.addr, predictor=predictor.addr)) == 0
    out = capsys.readouterr().out.splitlines()
    hint = next(i for i, line in enumerate(out) if line.startswith("scale hint: "))
    assert out[hint] == f"scale hint: 1 executor(s) for the forecast load (1 answering; predictor {predictor.addr})"
    assert out[hint + 1].split() == ["MODEL", "FORECAST", "REQ/S"]
    assert out[hint + 2].split() == ["plus", f"{forecast.prediction.value:.2f}"]
    assert forecast.prediction.value > 0.5
