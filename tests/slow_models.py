"""A real ONNX model that takes milliseconds per row, for queueing tests (built with the onnx API).

``build_slow_model(path, width, depth)``: y = tanh(x @ W)^depth chained, x [N, width] FP32. Each
row costs depth * width^2 * 2 FLOPs, so the run time grows with the batch and stays far above
the scheduler's own overheads: queued requests really wait, in an order the test can observe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper, save_model


def build_slow_model(path: Path, width: int = 384, depth: int = 24) -> Path:
    rng = np.random.default_rng(7)
    weight = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
    nodes, last = [], "x"
    for i in range(depth):
        nodes.append(helper.make_node("MatMul", [last, "w"], [f"m{i}"]))
        last = f"t{i}" if i < depth - 1 else "y"
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [last]))
    graph = helper.make_graph(
        nodes, "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, width])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, str(path))
    return path
