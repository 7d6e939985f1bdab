"""`mlos up` registers the demo models (ONNX and GGUF) with a real registry on port 0: what it
registers becomes the scheduler's start-up models, and a GGUF model the registry refuses is left
out with a warning that carries the registry's reason."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mlos_cli.demo import GGUF_DEMOS
from mlos_cli.launcher import Child, Suite, SuiteConfig
from mlos_registry.client import RegistryClient
from mlos_registry.config import RegistrySettings
from mlos_registry.core import Registry
from mlos_registry.server import create_server

ONNX_DEMOS = ("iris", "silero_vad", "ocr_cls")


@pytest.fixture
async def registry_port(tmp_path: Path) -> AsyncIterator[int]:
    settings = RegistrySettings(data_dir=tmp_path / "registry", grpc_port=0, metrics_port=-1)
    core = await Registry.open(settings)
    server, port = create_server(settings, core)
    await server.start()
    yield port
    await server.stop(None)
    await core.close()


async def test_demo_models_registered_are_the_start_up_models(
    tmp_path: Path, registry_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    suite = Suite(SuiteConfig(home=tmp_path / "home"))
    suite.children["registry"] = Child("registry", None, registry_port, None)  # type: ignore[arg-type]  # in process
    for name, port in (("executor", 8201), ("predictor", 8301)):  # only their addresses are read
        suite.children[name] = Child(name, None, port, None)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="mlos_cli.launcher"):
        await suite._register_demo_models()
    async with RegistryClient(suite.addr("registry")) as registry:
        registered = {v.name for v in await registry.list()}
    assert set(ONNX_DEMOS) <= registered
    assert sorted(suite.models) == sorted(registered) and len(set(suite.models)) == len(suite.models)
    assert suite._env("scheduler")["MLOS_SCHEDULER_STARTUP_MODELS"] == ",".join(suite.models)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name, task in GGUF_DEMOS.items():
        said = [w for w in warnings if w.startswith(f"demo model {name} ({task}, GGUF) left out: the registry refused it: ")]
        if name in registered:
            assert not said
        else:  # a registry without GGUF support: left out, and the warning carries the registry's reason
            assert len(said) == 1 and "GGUF" in said[0].split("refused it: ", 1)[1], said
    assert (tmp_path / "home" / "demo" / "demo" / "tinyllama-test.gguf").is_file()
