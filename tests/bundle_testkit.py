"""Model folders for the source tests: ONNX with external data, and a Hugging Face cache written
with huggingface_hub's own cache-writing functions (the ones hf_hub_download uses), offline."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def external_data_model(folder: Path, side: int = 16, location: str = "weights.bin", seed: int = 0) -> Path:
    """Y = X @ W + B in `folder`/model.onnx, W and B kept in external data at `location` (saved by
    onnx.save_model(..., save_as_external_data=True)); X FP32 [N, side]. Returns the model file."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((side, side)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(side).astype(np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["XW"]), helper.make_node("Add", ["XW", "B"], ["Y"])], "affine",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", side])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", side])], [w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return path


def ort_outputs(model_file: Path, x: np.ndarray) -> np.ndarray:
    """What ONNX Runtime in this process computes for input X (external data read from disk)."""
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": x})[0]


def point_external_data(model_file: Path, location: str) -> None:
    """Rewrites every external-data location of `model_file` to `location` (a hostile model)."""
    model = onnx.load(str(model_file), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    model_file.write_bytes(model.SerializeToString())


def hf_cache_repo(cache_dir: Path, repo_id: str, files: dict[str, bytes], revision: str = "main") -> tuple[str, Path]:
    """Writes `files` into `cache_dir` as huggingface_hub lays a download out: blobs named by
    content digest, snapshots/<commit>/<file> symlinks made by the library's _create_symlink, and
    refs/<revision> written by its _cache_commit_hash_for_specific_revision. Returns (commit,
    snapshot folder)."""
    from huggingface_hub.file_download import (
        _cache_commit_hash_for_specific_revision,
        _create_symlink,
        repo_folder_name,
    )

    storage = cache_dir / repo_folder_name(repo_id=repo_id, repo_type="model")
    commit = hashlib.sha1(repr(sorted(files.items())).encode()).hexdigest()
    snapshot = storage / "snapshots" / commit
    for rel, data in files.items():
        blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        pointer = snapshot / rel
        pointer.parent.mkdir(parents=True, exist_ok=True)
        _create_symlink(str(blob), str(pointer), new_blob=True)
    _cache_commit_hash_for_specific_revision(str(storage), revision, commit)
    return commit, snapshot


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
