"""Real ONNX models on string tensors, built with the `onnx` helper API (no grpc, no mlos.inference).

- ``str_identity``: Identity on a string tensor [N] (batchable: the first dim is variable).
- ``str_concat``: StringConcat (opset 20) of two string tensors [N]: the "string add".
- ``str_to_float``: Cast string -> float [N]; onnxruntime fails at run time on text like "abc".
- ``build_unloadable_model``: Add on strings, a valid ONNX file that onnxruntime cannot load
  (it has no string Add kernel).

Also imported by file path from tests/e2e (which must not import our protobufs).
"""

from __future__ import annotations

from pathlib import Path

from onnx import TensorProto, helper, save_model

OPSET = 20  # StringConcat arrived in opset 20
IR_VERSION = 9


def _save(path: Path, node, inputs: list[str], out_type: int) -> Path:
    graph = helper.make_graph(
        [node],
        path.stem,
        [helper.make_tensor_value_info(n, TensorProto.STRING, [None]) for n in inputs],
        [helper.make_tensor_value_info("y", out_type, [None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    save_model(model, str(path))
    return path


def build_string_models(folder: Path) -> dict[str, Path]:
    """name -> path of each string model, written under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "str_identity": _save(folder / "str_identity.onnx", helper.make_node("Identity", ["x"], ["y"]),
                              ["x"], TensorProto.STRING),
        "str_concat": _save(folder / "str_concat.onnx", helper.make_node("StringConcat", ["a", "b"], ["y"]),
                            ["a", "b"], TensorProto.STRING),
        "str_to_float": _save(folder / "str_to_float.onnx",
                              helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT),
                              ["x"], TensorProto.FLOAT),
    }


def build_unloadable_model(folder: Path) -> Path:
    """A valid ONNX file (the registry accepts it) that onnxruntime refuses to load."""
    folder.mkdir(parents=True, exist_ok=True)
    return _save(folder / "str_add.onnx", helper.make_node("Add", ["a", "b"], ["y"]), ["a", "b"], TensorProto.STRING)
