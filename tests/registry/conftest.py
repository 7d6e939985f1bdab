"""Fixtures: tiny ONNX model files, and a real registry server on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from registry_testkit import Serve, Served, add_model, identity_model, save

from mlos_registry.client import RegistryClient
from mlos_registry.config import RegistrySettings
from mlos_registry.core import Registry
from mlos_registry.server import create_server


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def dynamic_onnx(models_dir: Path) -> Path:
    return save(add_model("N"), models_dir / "add_dynamic.onnx")


@pytest.fixture
def fixed_onnx(models_dir: Path) -> Path:
    return save(identity_model([1, 4]), models_dir / "ident_fixed.onnx")


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    """serve(**settings_overrides) -> a started server with a connected RegistryClient (grpc_port
    given = a restart on that port; data_dir given = on that store)."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def start(**overrides) -> Served:
        overrides.setdefault("data_dir", tmp_path / f"data{len(cleanups)}")
        overrides.setdefault("grpc_port", 0)
        settings = RegistrySettings(metrics_port=-1, **overrides)
        core = await Registry.open(settings)
        server, port = create_server(settings, core)
        await server.start()
        addr = f"127.0.0.1:{port}"
        client = RegistryClient(addr)

        stopped = False

        async def stop() -> None:
            nonlocal stopped
            if not stopped:
                stopped = True
                await client.close()
                await server.stop(None)
                await core.close()

        cleanups.append(stop)
        return Served(settings, core, client, addr, stop)

    yield start
    for stop in reversed(cleanups):
        await stop()


@pytest.fixture
async def served(serve: Serve) -> Served:
    return await serve()
