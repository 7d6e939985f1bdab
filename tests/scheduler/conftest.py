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
from generation_sched_testkit import prepared
from generation_testkit import generation_model
from sched_testkit import Stack, demo_models, rest_client, running_stack
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
    async with rest_client(stack) as client:
        yield client


TINY = generation_model("tiny", context_length=256, contexts=2, chunk_tokens=4, threads=1)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def llama(tmp_path_factory: pytest.TempPathFactory, demo: dict[str, DemoModel]) -> AsyncIterator[Stack]:
    """A stack (one per test module) whose executor serves TINY, the repo's tiny llama GGUF
    (mlos_cli/gguf_models.py, seed 0), from disk through llama.cpp; skipped without llama-cpp-python."""
    pytest.importorskip("llama_cpp")
    from mlos_cli.gguf_models import write_tiny_llama

    root = tmp_path_factory.mktemp("llama")
    tiny = write_tiny_llama(root / "tiny.gguf", seed=0)
    async with running_stack(root, demo, load=(), executor_files={"tiny": Path(tiny)}) as stack:
        yield prepared(stack, [TINY])
