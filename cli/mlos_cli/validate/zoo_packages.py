"""Zoo models that installed PyPI packages ship as .onnx files (installed with --no-deps by
`make install`; only their model files are used): rapidocr's text detector and recogniser, magika's
file-type classifier and NudeNet's YOLOv8n detector. A package that is missing leaves its models
out with the reason in `missing`.

Inputs are deterministic per seed and shaped like the package's own pre-processing produces them,
so a served answer is compared with the package's runtime on the input it really sees.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from mlos_cli import demo
from mlos_cli.validate.zoo import Inputs, ZooModel, ort_reference

OCR_DET_SHAPE = (3, 96, 160)  # a small page: det's height and width are free (multiples of 32)
OCR_REC_SHAPE = (3, 48, 160)  # rec's height is 48, its width free
NUDENET_SHAPE = (3, 320, 320)  # the 320n model's own input size
MAGIKA_MODEL = "models/standard_v3_3/model.onnx"
MAGIKA_BLOCK = 1024  # magika's beg_size / end_size for this model (its config.min.json)
MAGIKA_PADDING = 256  # its padding_token: a value no byte has


def image_sampler(shape: tuple[int, int, int], low: float = -1.0) -> Callable[[int, int], Inputs]:
    """Uniform values in [low, 1): rapidocr normalises to [-1, 1], NudeNet scales to [0, 1]."""

    def sample(batch: int, seed: int) -> Inputs:
        rng = np.random.default_rng(seed)
        return {"x": rng.uniform(low, 1.0, size=(batch, *shape)).astype(np.float32)}

    return sample


def _package_model(package: str, pip_name: str, relative: str, missing: dict[str, str], name: str) -> Path | None:
    path = demo.package_file(package, relative, pip_name=pip_name)
    if path is None:
        missing[name] = f"{pip_name} is not installed (pip install --no-deps {pip_name}; `make install` does it)"
    return path


def _source(pip_name: str, relative: str) -> str:
    return f"{pip_name} {demo.package_version(pip_name)} package: {relative}"


def rapidocr(missing: dict[str, str]) -> list[ZooModel]:
    made = []
    for name, file, shape in (("ocr_det", "ch_PP-OCRv4_det_infer.onnx", OCR_DET_SHAPE),
                              ("ocr_rec", "ch_PP-OCRv4_rec_infer.onnx", OCR_REC_SHAPE)):
        relative = f"models/{file}"
        path = _package_model("rapidocr_onnxruntime", "rapidocr-onnxruntime", relative, missing, name)
        if path is not None:
            made.append(ZooModel(name, path, "onnx", "infer", _source("rapidocr-onnxruntime", relative),
                                 image_sampler(shape), ort_reference(path), batch_sizes=(1, 4)))
    return made


def magika_features(content: bytes) -> np.ndarray:
    """magika's model input for one file: the first and the last MAGIKA_BLOCK bytes after stripping
    leading / trailing whitespace, the first block padded at its end and the last at its start with
    MAGIKA_PADDING; int32 [2 * MAGIKA_BLOCK]."""
    stripped = content.strip()
    begin = list(stripped[:MAGIKA_BLOCK])
    end = list(stripped[-MAGIKA_BLOCK:]) if stripped else []
    begin += [MAGIKA_PADDING] * (MAGIKA_BLOCK - len(begin))
    end = [MAGIKA_PADDING] * (MAGIKA_BLOCK - len(end)) + end
    return np.asarray(begin + end, dtype=np.int32)


def magika_sample_files() -> list[Path]:
    """Real files of several types from installed packages: Python source, JSON, an ONNX protobuf."""
    import json as json_module  # a stdlib module's file: always present

    files = [Path(json_module.__file__), Path(np.__file__)]
    for relative in ("config/content_types_kb.min.json", MAGIKA_MODEL):
        path = demo.package_file("magika", relative, pip_name="magika")
        if path is not None:
            files.append(path)
    return files


def magika(missing: dict[str, str]) -> list[ZooModel]:
    path = _package_model("magika", "magika", MAGIKA_MODEL, missing, "magika")
    if path is None:
        return []
    files = magika_sample_files()

    def sample(batch: int, seed: int) -> Inputs:
        rows = [magika_features(files[(seed + i) % len(files)].read_bytes()) for i in range(batch)]
        return {"bytes": np.stack(rows)}

    return [ZooModel("magika", path, "onnx", "infer", _source("magika", MAGIKA_MODEL), sample, ort_reference(path),
                     batch_sizes=(1, 8, 32))]


def nudenet(missing: dict[str, str]) -> list[ZooModel]:
    path = _package_model("nudenet", "nudenet", "320n.onnx", missing, "nudenet")
    if path is None:
        return []
    sampler = image_sampler(NUDENET_SHAPE, low=0.0)

    def sample(batch: int, seed: int) -> Inputs:
        return {"images": sampler(batch, seed)["x"]}

    return [ZooModel("nudenet", path, "onnx", "infer", _source("nudenet", "320n.onnx"), sample, ort_reference(path),
                     batch_sizes=(1, 4))]


def package_models(missing: dict[str, str]) -> list[ZooModel]:
    return [*rapidocr(missing), *magika(missing), *nudenet(missing)]
