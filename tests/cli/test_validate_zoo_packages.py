"""The package models of the validation zoo: magika's input is built the way magika builds it (so
its own model names the file types right), and every model's sample runs in its in-process
reference with the shapes the model declares."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlos_cli import demo
from mlos_cli.validate import zoo_packages

pytest.importorskip("onnxruntime")


def test_magika_features_pad_and_strip_like_magika() -> None:
    short = zoo_packages.magika_features(b"  \n hello \t")
    assert short.shape == (2 * zoo_packages.MAGIKA_BLOCK,) and short.dtype == np.int32
    block = zoo_packages.MAGIKA_BLOCK
    assert list(short[:5]) == list(b"hello") and set(short[5:block]) == {zoo_packages.MAGIKA_PADDING}
    assert list(short[-5:]) == list(b"hello") and set(short[block:-5]) == {zoo_packages.MAGIKA_PADDING}
    empty = zoo_packages.magika_features(b" \n ")
    assert set(empty) == {zoo_packages.MAGIKA_PADDING}
    long = zoo_packages.magika_features(bytes(range(256)) * 20)
    assert long[0] == 0 and long[-1] == 255 and zoo_packages.MAGIKA_PADDING not in long


def test_magika_names_the_sample_files_right() -> None:
    missing: dict[str, str] = {}
    models = zoo_packages.magika(missing)
    if not models:
        pytest.skip(missing["magika"])
    config = demo.package_file("magika", "models/standard_v3_3/config.min.json", pip_name="magika")
    assert config is not None
    labels = json.loads(Path(config).read_text())["target_labels_space"]
    files = zoo_packages.magika_sample_files()
    scores = models[0].reference(models[0].sample(len(files), 0))["target_label"]
    want = {".py": "python", ".json": "json", ".onnx": "onnx"}
    got = [labels[int(row.argmax())] for row in scores]
    assert got == [want[f.suffix] for f in files]


@pytest.mark.parametrize("name", ["magika", "nudenet", "ocr_det", "ocr_rec"])
def test_each_package_model_runs_its_sample_in_process(name: str) -> None:
    missing: dict[str, str] = {}
    models = {m.name: m for m in zoo_packages.package_models(missing)}
    if name not in models:
        pytest.skip(missing[name])
    model = models[name]
    inputs = model.sample(model.batch_sizes[-1], 3)
    outputs = model.reference(inputs)
    assert outputs and all(v.shape[0] == model.batch_sizes[-1] for v in outputs.values())
    again = model.reference(model.sample(model.batch_sizes[-1], 3))
    assert all(np.array_equal(outputs[k], again[k]) for k in outputs)  # deterministic per seed
