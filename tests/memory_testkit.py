"""Models of a chosen memory size and their predicted footprints, for budget and eviction tests
(executor and scheduler alike)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlos_executor.budget import MB
from mlos_executor.memory import memory_facts, memory_row
from mlos_predictor.kinds import SPECS

OPSET = [helper.make_opsetid("", 17)]


def prior_mb(path: Path, batch_size: int) -> float:
    """The memory kind's documented prior for loading `path` and warming it at `batch_size`."""
    return float(SPECS["memory"].prior(np.array([memory_row(memory_facts(path), batch_size)]))[0])


def table_model(rows: int, cols: int = 1024, seed: int = 0) -> onnx.ModelProto:
    """Y = W[X], W FP32 [rows, cols] of random weights (rows x cols x 4 bytes, held once by ONNX
    Runtime: Gather packs nothing), X INT64 [-1] row indices: a model whose memory is its table."""
    w = numpy_helper.from_array(np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["W", "X"], ["Y"])], "table",
        [helper.make_tensor_value_info("X", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", cols])], [w],
    )
    return helper.make_model(graph, opset_imports=OPSET)


def sized_model(path: Path, predicted_mb: float) -> Path:
    """A table model whose predicted footprint (at batch 1) is within 0.01 MB under `predicted_mb`."""
    row_mb = 1.5 * 4096 / MB  # what one more row of 1024 FP32 adds to the prediction
    rows = int((predicted_mb - 8.0) / row_mb)
    for _ in range(3):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(table_model(rows, seed=rows).SerializeToString())
        over = prior_mb(path, 1) - predicted_mb
        if -0.01 < over <= 0:
            return path
        rows -= int(np.ceil(over / row_mb)) if over > 0 else -int(-over // row_mb)
    raise AssertionError(f"no table of the size predicted at {predicted_mb:.2f} MB")
