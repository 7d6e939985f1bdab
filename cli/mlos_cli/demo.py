"""Demo models: real ONNX files that ship with PyPI packages or are built locally.

- ``iris``: scikit-learn LogisticRegression on the bundled iris data, converted with skl2onnx.
- ``silero_vad``: the Silero voice-activity detector from the ``silero-vad`` wheel.
- ``ocr_cls``: the PP-OCR text-direction classifier from the ``rapidocr-onnxruntime`` wheel.

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
    """One demo model: its registry name, its .onnx file, and where it came from."""

    name: str
    path: Path
    source: str

    def sample_inputs(self, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
        """Deterministic inputs for ``batch`` requests' worth of data, keyed by input name."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        try:
            sampler = _SAMPLERS[self.name]
        except KeyError:
            raise ValueError(f"no sample inputs known for demo model {self.name!r}") from None
        return sampler(batch, seed)


def prepare_demo_models(home: Path) -> list[DemoModel]:
    """Build or locate every available demo model; ``home/demo/`` holds the built ones.

    A model whose package is missing is skipped with a warning that names the pip command.
    Raises RuntimeError when no demo model at all is available.
    """
    demo_dir = Path(home) / "demo"
    models = [m for m in (_prepare_iris(demo_dir), _locate_silero(), _locate_ocr_cls()) if m]
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
    _write_if_changed(path, _build_iris_onnx())
    source = (
        f"scikit-learn {_version('scikit-learn')} iris LogisticRegression"
        f" + skl2onnx {_version('skl2onnx')}"
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


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.is_file() and path.read_bytes() == data:
        return
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
    logger.info("wrote demo model %s (%d bytes)", path, len(data))


def _iris_inputs(batch: int, seed: int) -> dict[str, np.ndarray]:
    from sklearn.datasets import load_iris

    features = load_iris().data.astype(np.float32)
    rows = (np.arange(batch) + seed) % len(features)
    return {"X": np.ascontiguousarray(features[rows])}


# --- packaged models --------------------------------------------------------------------------


def _locate_silero() -> DemoModel | None:
    path = _package_file("silero_vad", "data/silero_vad.onnx", pip_name="silero-vad")
    if path is None:
        return None
    return DemoModel(
        name="silero_vad", path=path, source=f"silero-vad {_version('silero-vad')} package"
    )


def _locate_ocr_cls() -> DemoModel | None:
    path = _package_file(
        "rapidocr_onnxruntime",
        "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        pip_name="rapidocr-onnxruntime",
    )
    if path is None:
        return None
    version = _version("rapidocr-onnxruntime")
    return DemoModel(name="ocr_cls", path=path, source=f"rapidocr-onnxruntime {version} package")


def _package_file(package: str, relative: str, pip_name: str) -> Path | None:
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


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


_SAMPLERS: dict[str, Callable[[int, int], dict[str, np.ndarray]]] = {
    "iris": _iris_inputs,
    "silero_vad": _silero_inputs,
    "ocr_cls": _ocr_cls_inputs,
}
