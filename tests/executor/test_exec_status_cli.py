"""`mlos status` against real executor servers: mode, budget, use, loaded models' memory."""

from __future__ import annotations

import argparse
import json

import pytest
from exec_testkit import RegistryServed, StartExecutor
from predictor_testkit import free_port

from mlos_cli.status import status

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
