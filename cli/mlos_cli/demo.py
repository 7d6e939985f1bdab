"""Demo models: real ONNX files that ship with PyPI packages or are built locally.

- ``iris``: scikit-learn LogisticRegression on the bundled iris data, converted with skl2onnx.
- ``silero_vad``: the Silero voice-activity detector from the ``silero-vad`` wheel.
- ``ocr_cls``: the PP-OCR text-direction classifier from the ``rapidocr-onnxruntime`` wheel.
- ``tinyllama-test`` (task "generate") and ``tiny-bert-embed`` (task "embed"): tiny GGUF models with
  random weights written by ``mlos_cli.gguf_models``, for llama.cpp; only with ``generation=True``
  and when llama-cpp-python and gguf are installed.

The two packaged models are located with ``importlib.util.find_spec`` and never imported: the
Python wrappers of those packages pull torch and opencv, and only their ``.onnx`` files are used.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SILERO_SAMPLE_RATE = 16_000
SILERO_WINDOW = 576  # 512 new samples + 64 samples of context at 16 kHz
SILERO_STATE_SHAPE = (2, 1, 128)
SILERO_TONE_HZ = 440.0
OCR_CLS_SHAPE = (3, 48, 192)  # rapidocr's cls_image_shape, per image


@dataclass(frozen=True)
class DemoModel:
    """One demo model: its registry name, its model file, where it came from, and its task
    ("infer": ONNX tensors in and out; "generate" / "embed": a GGUF model for llama.cpp)."""

    name: str
    path: Path
    source: str
    task: str = "infer"

    def sample_inputs(self, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
        """Deterministic inputs for ``batch`` requests' worth of data, keyed by input name."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        try:
            sampler = _SAMPLERS[self.name]
        except KeyError:
            raise ValueError(f"no sample inputs known for demo model {self.name!r}") from None
        return sampler(batch, seed)


def prepare_demo_models(home: Path, generation: bool = False) -> list[DemoModel]:
    """Build or locate every available demo model; ``home/demo/`` holds the built ones.

    The ONNX models always; with ``generation`` also the GGUF models for llama.cpp (written on the
    first call, reused after). A model whose package is missing is skipped with a warning that
    names the install command. Raises RuntimeError when no demo model at all is available.
    """
    demo_dir = Path(home) / "demo"
    models = [m for m in (_prepare_iris(demo_dir), _locate_silero(), _locate_ocr_cls()) if m]
    if generation:
        models += _prepare_gguf(demo_dir)
    if not models:
        raise RuntimeError(
            "no demo model is available: install them with "
            "`pip install scikit-learn skl2onnx` and "
            "`pip install --no-deps silero-vad rapidocr-onnxruntime`"
        )
    return models


# --- iris -------------------------------------------------------------------------------------


def _prepare_iris(demo_dir: Path) -> DemoModel | None:
    if not (_has_package("sklearn") and _has_package("skl2onnx")):
        logger.warning(
            "demo model 'iris' skipped: scikit-learn/skl2onnx missing "
            "(pip install scikit-learn skl2onnx, or pip install -e '.[demo]')"
        )
        return None
    path = demo_dir / "iris.onnx"
    write_if_changed(path, _build_iris_onnx())
    source = (
        f"scikit-learn {package_version('scikit-learn')} iris LogisticRegression"
        f" + skl2onnx {package_version('skl2onnx')}"
    )
    return DemoModel(name="iris", path=path, source=source)


def _build_iris_onnx() -> bytes:
    """Train and convert; deterministic, so identical bytes on every call."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500, random_state=0).fit(features, labels)
    onnx_model = convert_sklearn(
        model,
        name="iris",  # fixed graph name: skl2onnx otherwise draws a random one
        initial_types=[("X", FloatTensorType([None, 4]))],
        options={id(model): {"zipmap": False}},
    )
    return onnx_model.SerializeToString()


def write_if_changed(path: Path, data: bytes) -> bool:
    """Writes ``data`` to ``path`` unless it already holds exactly these bytes; True if written.

    Atomic: a fsynced temp file beside ``path`` is renamed over it, so a reader (or a crash) never
    sees half a file; no temp file is left behind on error."""
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("wrote %s (%d bytes)", path, len(data))
    return True


def _iris_inputs(batch: int, seed: int) -> dict[str, np.ndarray]:
    from sklearn.datasets import load_iris

    features = load_iris().data.astype(np.float32)
    rows = (np.arange(batch) + seed) % len(features)
    return {"X": np.ascontiguousarray(features[rows])}


# --- GGUF models for llama.cpp ---------------------------------------------------------------

GGUF_DEMOS = {"tinyllama-test": "generate", "tiny-bert-embed": "embed"}


def _prepare_gguf(demo_dir: Path) -> list[DemoModel]:
    """The tiny llama (generation) and BERT (embedding) GGUF files, or none with a warning."""
    names = ", ".join(repr(n) for n in GGUF_DEMOS)
    if not _has_package("llama_cpp"):
        logger.warning(
            "demo models %s skipped: llama-cpp-python is not installed "
            "(`make install` builds it once; or scripts/install_llama.sh .venv/bin/python)",
            names,
        )
        return []
    if not _has_package("gguf"):
        logger.warning("demo models %s skipped: the gguf package is missing (pip install -e '.[llm]')", names)
        return []
    from mlos_cli import gguf_models

    source = f"mlos_cli.gguf_models, random weights (seed 0), gguf {package_version('gguf')}"
    writers = {"tinyllama-test": gguf_models.write_tiny_llama, "tiny-bert-embed": gguf_models.write_tiny_bert}
    return [DemoModel(name, writers[name](demo_dir / f"{name}.gguf"), source, task) for name, task in GGUF_DEMOS.items()]


SAMPLE_TEXTS = (
    b"the quick brown fox jumps over the lazy dog",
    b"hello world, how are you",
    b"a model that writes one token at a time",
    "caf\u00e9 \u2615 \u65e5\u672c".encode(),  # outside the tiny vocabularies: byte fallback / single letters
)


def _texts(batch: int, seed: int) -> np.ndarray:
    """``batch`` texts (BYTES, as the front door's text_input), cycling through SAMPLE_TEXTS from ``seed``."""
    return np.array([SAMPLE_TEXTS[(seed + i) % len(SAMPLE_TEXTS)] for i in range(batch)], dtype=np.object_)


def _generation_inputs(batch: int, seed: int) -> dict[str, np.ndarray]:
    if batch != 1:
        raise ValueError("tinyllama-test takes one prompt per request: its text_input is [1]")
    return {"text_input": _texts(1, seed)}


def _embedding_inputs(batch: int, seed: int) -> dict[str, np.ndarray]:
    return {"text_input": _texts(batch, seed)}


# --- packaged models --------------------------------------------------------------------------


def _locate_silero() -> DemoModel | None:
    path = package_file("silero_vad", "data/silero_vad.onnx", pip_name="silero-vad")
    if path is None:
        return None
    return DemoModel(
        name="silero_vad", path=path, source=f"silero-vad {package_version('silero-vad')} package"
    )


def _locate_ocr_cls() -> DemoModel | None:
    path = package_file(
        "rapidocr_onnxruntime",
        "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        pip_name="rapidocr-onnxruntime",
    )
    if path is None:
        return None
    version = package_version("rapidocr-onnxruntime")
    return DemoModel(name="ocr_cls", path=path, source=f"rapidocr-onnxruntime {version} package")


def package_file(package: str, relative: str, pip_name: str) -> Path | None:
    """The file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    logger.warning(
        "demo model from %s skipped: %s not found (pip install --no-deps %s)",
        package,
        relative,
        pip_name,
    )
    return None


def _silero_inputs(batch: int, seed: int) -> dict[str, np.ndarray]:
    del seed  # the tone is the same for every seed
    if batch != 1:
        raise ValueError(
            "silero_vad takes batch 1 only here: its state input is [2, batch, 128], "
            "so the batch dim is not first for every input"
        )
    t = np.arange(SILERO_WINDOW, dtype=np.float64) / SILERO_SAMPLE_RATE
    tone = 0.5 * np.sin(2.0 * np.pi * SILERO_TONE_HZ * t)
    return {
        "input": tone.astype(np.float32).reshape(1, SILERO_WINDOW),
        "state": np.zeros(SILERO_STATE_SHAPE, dtype=np.float32),
        "sr": np.array(SILERO_SAMPLE_RATE, dtype=np.int64),
    }


def _ocr_cls_inputs(batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.random((batch, *OCR_CLS_SHAPE), dtype=np.float32)}


# --- helpers ----------------------------------------------------------------------------------


def _has_package(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def package_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


_SAMPLERS: dict[str, Callable[[int, int], dict[str, np.ndarray]]] = {
    "iris": _iris_inputs,
    "silero_vad": _silero_inputs,
    "ocr_cls": _ocr_cls_inputs,
    "tinyllama-test": _generation_inputs,
    "tiny-bert-embed": _embedding_inputs,
}
