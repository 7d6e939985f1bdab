"""Fitted scikit-learn estimators as ONNX graphs that meet models.py's serving contract.

Every graph takes `features` float32 [N, F] and gives one output named after the kind's output
in the kind's unit (models.py). `reference(spec, estimator, x)` is what the graph must compute,
from scikit-learn itself; the trainer checks the two agree before serving a graph.

- Gradient boosting (regressor, classifier): skl2onnx, then wrapped. A regressor's `variable`
  becomes the kind's output (clipped at 0 for kinds that cannot be negative: rates, compute ms);
  a classifier's positive-class probability column becomes `probability`.
- IsolationForest: written here as ONE TreeEnsembleRegressor (ai.onnx.ml) whose leaves hold each
  tree's path length (depth + c(leaf samples)); score = 2 ** (-mean path length / c(max_samples)),
  scikit-learn's -score_samples, in (0, 1] with higher = more anomalous, then the trainer's Platt
  calibration (trainer.calibrate): sigmoid(a * score + b), a probability. skl2onnx's own graph for
  IsolationForest builds nodes per tree and ran at ~5-7 ms per row here, against ~0.05 ms for this.
  Thresholds are rounded down to float32, so `x <= t` decides as scikit-learn (float32 inputs) does.

Needs scikit-learn and skl2onnx (the `learn` extra); imported lazily by the trainer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from mlos_predictor.kinds import KindSpec
from mlos_predictor.models import INPUT_NAME

OPSET = 17
ML_OPSET = 3
NON_NEGATIVE = frozenset({"workload", "latency"})


def export(spec: KindSpec, estimator: Any) -> bytes:
    """The ONNX bytes of `estimator` (fitted on rows of `spec`) under the serving contract."""
    from sklearn.ensemble import IsolationForest

    if isinstance(estimator, IsolationForest):
        model = _isolation_forest(spec, estimator)
    else:
        model = _boosting(spec, estimator)
    model.producer_name = "mlos-predictor"
    helper.set_model_props(model, {"kind": spec.kind, "features": ",".join(spec.names), "unit": spec.unit})
    onnx.checker.check_model(model)
    return model.SerializeToString()


def reference(spec: KindSpec, estimator: Any, x: np.ndarray) -> np.ndarray:
    """What the exported graph computes, by scikit-learn, for rows `x` (float64 (n, F))."""
    x32 = x.astype(np.float32).astype(np.float64)
    if spec.task == "anomaly":
        a, b = estimator.mlos_calibration_
        return 1.0 / (1.0 + np.exp(-(a * -estimator.score_samples(x32) + b)))
    if spec.task == "classification":
        return estimator.predict_proba(x32)[:, 1]
    out = estimator.predict(x32)
    return np.maximum(out, 0.0) if spec.kind in NON_NEGATIVE else out


def _boosting(spec: KindSpec, estimator: Any) -> onnx.ModelProto:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    classifier = spec.task == "classification"
    model = convert_sklearn(
        estimator,
        name=spec.registry_name,
        initial_types=[(INPUT_NAME, FloatTensorType([None, spec.width]))],
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
        options={id(estimator): {"zipmap": False}} if classifier else None,
    )
    graph = model.graph
    if classifier:
        graph.initializer.append(helper.make_tensor("positive_class", TensorProto.INT64, [], [1]))
        graph.node.append(helper.make_node("Gather", ["probabilities", "positive_class"], [spec.output], axis=1))
        shape: list[Any] = [None]
    else:
        (out,) = [o.name for o in graph.output]
        op = "Relu" if spec.kind in NON_NEGATIVE else "Identity"
        graph.node.append(helper.make_node(op, [out], [spec.output]))
        shape = [None, 1]
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(spec.output, TensorProto.FLOAT, shape))
    return model


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): the mean path length of an unsuccessful search in a binary tree of n points
    (Liu et al. 2008), as scikit-learn computes it (0 for n <= 1, 1 for n = 2)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def _floor32(values: np.ndarray) -> list[float]:
    """The largest float32 <= each value, so float32 x <= result exactly when x <= value."""
    v32 = values.astype(np.float32)
    over = v32.astype(np.float64) > values
    v32[over] = np.nextafter(v32[over], np.float32(-np.inf))
    return [float(v) for v in v32]


def _isolation_forest(spec: KindSpec, forest: Any) -> onnx.ModelProto:
    attrs: dict[str, Any] = {k: [] for k in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes", "nodes_truenodeids",
        "nodes_falsenodeids", "target_treeids", "target_nodeids", "target_ids", "target_weights",
    )}
    for t, (tree, features) in enumerate(zip(forest.estimators_, forest.estimators_features_)):
        tr = tree.tree_
        left, right = tr.children_left, tr.children_right
        depth = np.zeros(tr.node_count)
        for node in range(tr.node_count):  # children always come after their parent
            if left[node] >= 0:
                depth[left[node]] = depth[right[node]] = depth[node] + 1
        leaf = left < 0
        path = depth + average_path_length(tr.n_node_samples)
        thresholds = _floor32(tr.threshold)
        for node in range(tr.node_count):
            attrs["nodes_treeids"].append(t)
            attrs["nodes_nodeids"].append(node)
            attrs["nodes_featureids"].append(0 if leaf[node] else int(features[tr.feature[node]]))
            attrs["nodes_values"].append(0.0 if leaf[node] else thresholds[node])
            attrs["nodes_modes"].append("LEAF" if leaf[node] else "BRANCH_LEQ")
            attrs["nodes_truenodeids"].append(0 if leaf[node] else int(left[node]))
            attrs["nodes_falsenodeids"].append(0 if leaf[node] else int(right[node]))
            if leaf[node]:
                attrs["target_treeids"].append(t)
                attrs["target_nodeids"].append(node)
                attrs["target_ids"].append(0)
                attrs["target_weights"].append(float(path[node]))
    scale = -math.log(2.0) / (len(forest.estimators_) * float(average_path_length(np.array([forest._max_samples]))[0]))
    nodes = [
        helper.make_node(
            "TreeEnsembleRegressor", [INPUT_NAME], ["path_sum"], domain="ai.onnx.ml",
            n_targets=1, aggregate_function="SUM", post_transform="NONE", **attrs,
        ),
        helper.make_node("Mul", ["path_sum", "scale"], ["log_score"]),
        helper.make_node("Exp", ["log_score"], ["raw_score"]),
        helper.make_node("Mul", ["raw_score", "calibration_a"], ["logit_a"]),
        helper.make_node("Add", ["logit_a", "calibration_b"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], [spec.output]),
    ]
    a, b = forest.mlos_calibration_
    graph = helper.make_graph(
        nodes,
        spec.registry_name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, spec.width])],
        [helper.make_tensor_value_info(spec.output, TensorProto.FLOAT, [None, 1])],
        initializer=[
            helper.make_tensor("scale", TensorProto.FLOAT, [], [scale]),
            helper.make_tensor("calibration_a", TensorProto.FLOAT, [], [a]),
            helper.make_tensor("calibration_b", TensorProto.FLOAT, [], [b]),
        ],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)]
    )
