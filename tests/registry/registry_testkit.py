"""Tiny ONNX models built with onnx.helper, for the registry tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from mlos_cli.__main__ import main
from mlos_registry.client import RegistryClient
from mlos_registry.config import RegistrySettings
from mlos_registry.core import Registry


def add_model(first_dim: int | str = "N") -> onnx.ModelProto:
    """z = x + y, shape [first_dim, 3] FP32 (first_dim "N" = dynamic batch)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [first_dim, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [first_dim, 3])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [first_dim, 3])
    graph = helper.make_graph([helper.make_node("Add", ["x", "y"], ["z"])], "add", [x, y], [z])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def identity_model(shape: list[int | str], elem: int = TensorProto.INT64) -> onnx.ModelProto:
    a = helper.make_tensor_value_info("a", elem, shape)
    b = helper.make_tensor_value_info("b", elem, shape)
    graph = helper.make_graph([helper.make_node("Identity", ["a"], ["b"])], "ident", [a], [b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


@dataclass
class Served:
    settings: RegistrySettings
    core: Registry
    client: RegistryClient
    addr: str
    stop: Callable[[], Awaitable[None]]  # stops the server and closes its stores (idempotent)


Serve = Callable[..., Awaitable[Served]]


async def run_mlos(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """Runs the `mlos` command with `args` (in a thread: it runs its own event loop); (code, stdout, stderr)."""
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err
