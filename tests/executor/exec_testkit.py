"""Tiny ONNX builders and the types the executor fixtures hand out (imported by the tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from grpc import aio
from onnx import TensorProto, helper, numpy_helper

from mlos.common.v1 import tensor_pb2
from mlos_common.tensors import array_from_raw, array_to_raw, datatype_of
from mlos_executor.client import ExecutorClient
from mlos_executor.config import ExecutorSettings
from mlos_executor.core import ExecutorCore
from mlos_executor.servicer import ExecutorServicer
from mlos_registry.client import RegistryClient

OPSET = [helper.make_opsetid("", 17)]


# ---- tiny ONNX builders ----


def plus_one_model() -> onnx.ModelProto:
    """Y = X + 1, X FP32 [-1, 3]."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 3])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["X", "one"], ["Y"])], "plus_one", [x], [y], [one])
    return helper.make_model(graph, opset_imports=OPSET)


def int64_double_model() -> onnx.ModelProto:
    """B = A * 2, A INT64 [-1, 2]."""
    a = helper.make_tensor_value_info("A", TensorProto.INT64, ["N", 2])
    b = helper.make_tensor_value_info("B", TensorProto.INT64, ["N", 2])
    two = helper.make_tensor("two", TensorProto.INT64, [1], [2])
    graph = helper.make_graph([helper.make_node("Mul", ["A", "two"], ["B"])], "int64_double", [a], [b], [two])
    return helper.make_model(graph, opset_imports=OPSET)


def two_outputs_model() -> onnx.ModelProto:
    """SUM = X + X, NEG = -X, X FP32 [-1, 4]."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])
    s = helper.make_tensor_value_info("SUM", TensorProto.FLOAT, ["N", 4])
    n = helper.make_tensor_value_info("NEG", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "X"], ["SUM"]), helper.make_node("Neg", ["X"], ["NEG"])],
        "two_outputs", [x], [s, n],
    )
    return helper.make_model(graph, opset_imports=OPSET)


def string_identity_model() -> onnx.ModelProto:
    """Y = X, X BYTES (string) [-1]."""
    x = helper.make_tensor_value_info("X", TensorProto.STRING, ["N"])
    y = helper.make_tensor_value_info("Y", TensorProto.STRING, ["N"])
    graph = helper.make_graph([helper.make_node("Identity", ["X"], ["Y"])], "str_identity", [x], [y])
    return helper.make_model(graph, opset_imports=OPSET)


def unrunnable_model() -> onnx.ModelProto:
    """Valid ONNX (onnx.checker passes) that onnxruntime rejects at session creation:
    Add binds its type parameter T to both float (X) and int64 (the initializer)."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 3])
    c = helper.make_tensor("c", TensorProto.INT64, [1], [1])
    graph = helper.make_graph([helper.make_node("Add", ["X", "c"], ["Y"])], "mixed_types", [x], [y], [c])
    model = helper.make_model(graph, opset_imports=OPSET)
    onnx.checker.check_model(model)
    return model


def wide_model(width: int) -> onnx.ModelProto:
    """Y = X + 1, X FP32 [-1, width]: `width` x 4 bytes in and out per batch item."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", width])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", width])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["X", "one"], ["Y"])], "wide", [x], [y], [one])
    return helper.make_model(graph, opset_imports=OPSET)


def weights_model(side: int) -> onnx.ModelProto:
    """Y = X @ W, W FP32 [side, side] of random weights (side² x 4 bytes in the file)."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((side, side)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])], "weights",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", side])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", side])], [w],
    )
    return helper.make_model(graph, opset_imports=OPSET)


def shared_base_model(side: int, head_seed: int) -> onnx.ModelProto:
    """Y = X @ W + B: the base W FP32 [side, side] is the same random weights in every model (as in
    fine-tunes of one base), the head B [side] differs by `head_seed`."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((side, side)).astype(np.float32), "W")
    b = numpy_helper.from_array(np.random.default_rng(head_seed).standard_normal(side).astype(np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["H"]), helper.make_node("Add", ["H", "B"], ["Y"])], "based",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", side])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", side])], [w, b],
    )
    return helper.make_model(graph, opset_imports=OPSET)


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def decoded(reply) -> dict[str, np.ndarray]:
    """An execute reply's outputs by name, as arrays."""
    return {t.name: array_from_raw(t.name, t.datatype, t.shape, t.raw) for t in reply.outputs}


def tensor(name: str, array: np.ndarray) -> tensor_pb2.Tensor:
    return tensor_pb2.Tensor(name=name, datatype=datatype_of(array), shape=array.shape, raw=array_to_raw(array))


@dataclass
class ModelFiles:
    plus_one: Path
    int64_double: Path
    two_outputs: Path
    unrunnable: Path


@dataclass
class RegistryServed:
    addr: str
    client: RegistryClient


@dataclass
class ExecutorServed:
    settings: ExecutorSettings
    core: ExecutorCore
    client: ExecutorClient
    addr: str
    cache_dir: Path
    fetches: list[tuple[str, int]] = field(default_factory=list)
    server: aio.Server | None = None
    servicer: ExecutorServicer | None = None


StartExecutor = Callable[..., Awaitable[ExecutorServed]]


