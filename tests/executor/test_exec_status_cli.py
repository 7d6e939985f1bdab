"""`mlos status` against real executor servers: mode, budget, use, loaded models' memory."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pytest
from exec_testkit import RegistryServed, StartExecutor, save, tensor
from memory_testkit import sized_model, table_model
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
    assert executor["memory_free_bytes"] == 256 * MB - footprint.bytes and executor["evictions"] == 0
    assert executor["placement"]["pinned"] is False and executor["runtime_mode_reason"].startswith("the mlos_ml")


async def test_status_shows_evictions_mode_reason_and_numa_placement(
    registry: RegistryServed, start_executor: StartExecutor, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = tmp_path / "host/sys/module/mlos_ml/parameters"
    module.mkdir(parents=True)
    (module / "enable_scheduler").write_text("1")
    (module / "enable_gpu_manager").write_text("1")
    ex = await start_executor(memory_budget_mb=64, sys_root=tmp_path / "host")
    a = await registry.client.register("a", save(table_model(1024, seed=1), tmp_path / "a.onnx"))
    await ex.client.load("a", a.version, a.sha256)
    used = (await ex.client.status()).memory_used_bytes / MB
    big = sized_model(tmp_path / "big.onnx", 64 - used / 2)
    mv = await registry.client.register("big", big)
    await ex.client.load("big", mv.version, mv.sha256)  # fits only once a is gone
    assert await status(args(ex.addr)) == 0
    out = capsys.readouterr().out
    assert "kernel_full" in out.splitlines()[1]
    assert "memory: " in out and "1 eviction(s); evicted a v1" in out and "for big v1" in out, out
    assert "mode kernel_full: mlos_ml loaded: enable_scheduler=1, enable_gpu_manager=1" in out
    assert "numa: not pinned" in out and "gpu: none (device is cpu)" in out


async def test_status_says_which_executor_did_not_answer(
    start_executor: StartExecutor, capsys: pytest.CaptureFixture[str]
) -> None:
    ex = await start_executor(memory_budget_mb=0)
    gone = f"127.0.0.1:{free_port()}"
    assert await status(args(ex.addr, gone, predictor=f"127.0.0.1:{free_port()}")) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[3] == "none"  # no budget
    [line] = [line for line in out if line.startswith(gone)]  # after the first executor's detail lines
    assert "unreachable (UNAVAILABLE" in line, out
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
