"""Fixtures: a real registry + executor + scheduler stack, in-process on port 0.

`stack` is shared by the whole session (one event loop, loop_scope="session"); tests that break
the stack (stopping the executor) or need other settings start their own with `running_stack`.
Test modules using it carry `pytestmark = pytest.mark.asyncio(loop_scope="session")`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from sched_testkit import Stack, demo_models, running_stack
from string_models import build_string_models

from mlos_cli.demo import DemoModel


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DemoModel]:
    return demo_models(tmp_path_factory.mktemp("demo-home"))


@pytest.fixture(scope="session")
def string_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real ONNX string models (identity, concat, string->float), registered in `stack` too."""
    return build_string_models(tmp_path_factory.mktemp("string-models"))


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, demo: dict[str, DemoModel], string_models: dict[str, Path]
) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path_factory.mktemp("stack"), demo, extra=string_models) as s:
        yield s


@pytest.fixture
def stack_root(tmp_path: Path) -> Path:
    return tmp_path


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the KServe v2 REST server of the shared stack (same core and shared memory
    registry as the gRPC front door, port 0)."""
    from mlos_scheduler.rest import start_rest

    port, close = await start_rest(stack.settings.model_copy(update={"http_port": 0}), stack.core, shm=stack.shm)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        yield client
    await close()
