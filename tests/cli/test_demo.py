"""Demo models: prepared into a temp home, run through a real ONNX Runtime session."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from mlos_cli import demo
from mlos_cli.demo import DemoModel, prepare_demo_models

EXPECTED_NAMES = {"iris", "silero_vad", "ocr_cls"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DemoModel]:
    home = tmp_path_factory.mktemp("home")
    return {m.name: m for m in prepare_demo_models(home)}


def _run(model: DemoModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    assert {i.name for i in session.get_inputs()} == set(inputs)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, inputs), strict=True))


def test_all_demo_models_available(models: dict[str, DemoModel]) -> None:
    assert set(models) == EXPECTED_NAMES
    for model in models.values():
        assert model.path.is_file(), model
        assert model.source


@pytest.mark.parametrize("batch", [1, 5])
def test_iris_outputs_match_sklearn(models: dict[str, DemoModel], batch: int) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = models["iris"]
    inputs = iris.sample_inputs(batch=batch, seed=3)
    x = inputs["X"]
    assert x.dtype == np.float32 and x.shape == (batch, 4)
    outputs = _run(iris, inputs)
    assert outputs["label"].dtype == np.int64 and outputs["label"].shape == (batch,)
    assert outputs["probabilities"].dtype == np.float32
    assert outputs["probabilities"].shape == (batch, 3)
    features, labels = load_iris(return_X_y=True)
    reference = LogisticRegression(max_iter=500, random_state=0).fit(features, labels)
    np.testing.assert_array_equal(outputs["label"], reference.predict(x))
    np.testing.assert_allclose(outputs["probabilities"], reference.predict_proba(x), atol=1e-4)


def test_iris_samples_are_real_rows_cycling(models: dict[str, DemoModel]) -> None:
    from sklearn.datasets import load_iris

    x = models["iris"].sample_inputs(batch=152, seed=0)["X"]
    rows = load_iris().data.astype(np.float32)
    np.testing.assert_array_equal(x[:150], rows)
    np.testing.assert_array_equal(x[150:], rows[:2])


def test_silero_vad_runs(models: dict[str, DemoModel]) -> None:
    silero = models["silero_vad"]
    inputs = silero.sample_inputs()
    assert inputs["input"].shape == (1, 576) and inputs["input"].dtype == np.float32
    assert inputs["state"].shape == (2, 1, 128)
    assert inputs["sr"].shape == () and inputs["sr"].dtype == np.int64
    np.testing.assert_array_equal(silero.sample_inputs(seed=7)["input"], inputs["input"])
    outputs = _run(silero, inputs)
    assert outputs["output"].shape == (1, 1)
    assert 0.0 <= float(outputs["output"][0, 0]) <= 1.0
    assert outputs["stateN"].shape == (2, 1, 128)


def test_silero_vad_rejects_batch(models: dict[str, DemoModel]) -> None:
    with pytest.raises(ValueError, match="batch"):
        models["silero_vad"].sample_inputs(batch=2)


@pytest.mark.parametrize("batch", [1, 4])
def test_ocr_cls_runs(models: dict[str, DemoModel], batch: int) -> None:
    cls = models["ocr_cls"]
    inputs = cls.sample_inputs(batch=batch, seed=0)
    x = inputs["x"]
    assert x.shape == (batch, 3, 48, 192) and x.dtype == np.float32
    assert 0.0 <= float(x.min()) and float(x.max()) < 1.0
    np.testing.assert_array_equal(cls.sample_inputs(batch=batch, seed=0)["x"], x)
    (probs,) = _run(cls, inputs).values()
    assert probs.shape == (batch, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_prepare_twice_does_not_rewrite(tmp_path: Path) -> None:
    first = {m.name: m for m in prepare_demo_models(tmp_path)}
    path = first["iris"].path
    assert path.parent == tmp_path / "demo"
    stat = path.stat()
    second = {m.name: m for m in prepare_demo_models(tmp_path)}
    assert second["iris"].path == path
    assert path.stat().st_mtime_ns == stat.st_mtime_ns
    assert path.stat().st_ino == stat.st_ino
    assert [p.name for p in path.parent.iterdir()] == ["iris.onnx"]  # no temp files left


def test_prepare_rewrites_a_changed_file(tmp_path: Path) -> None:
    path = next(m.path for m in prepare_demo_models(tmp_path) if m.name == "iris")
    good = path.read_bytes()
    path.write_bytes(b"corrupt")
    prepare_demo_models(tmp_path)
    assert path.read_bytes() == good


def test_missing_package_is_skipped_with_pip_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    real_find_spec = demo.importlib.util.find_spec

    def find_spec(name: str, *args: object):  # type: ignore[no-untyped-def]
        return None if name == "rapidocr_onnxruntime" else real_find_spec(name, *args)

    monkeypatch.setattr(demo.importlib.util, "find_spec", find_spec)
    with caplog.at_level(logging.WARNING, logger=demo.__name__):
        names = {m.name for m in prepare_demo_models(tmp_path)}
    assert names == EXPECTED_NAMES - {"ocr_cls"}
    assert "pip install --no-deps rapidocr-onnxruntime" in caplog.text


def test_no_model_available_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(demo.importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(RuntimeError, match="pip install"):
        prepare_demo_models(tmp_path)


# --- GGUF demo models (llama.cpp) ----------------------------------------------------------------

GGUF_TASKS = {"tinyllama-test": "generate", "tiny-bert-embed": "embed"}


def _gguf_demos(home: Path) -> dict[str, DemoModel]:
    return {m.name: m for m in prepare_demo_models(home, generation=True) if m.name in GGUF_TASKS}


def test_generation_adds_the_gguf_models_written_once(tmp_path: Path) -> None:
    from mlos_cli import gguf_models

    first = _gguf_demos(tmp_path)
    assert {name: m.task for name, m in first.items()} == GGUF_TASKS
    assert first["tinyllama-test"].path.read_bytes() == gguf_models.tiny_llama_bytes(0)
    assert first["tiny-bert-embed"].path.read_bytes() == gguf_models.tiny_bert_bytes(0)
    stats = {name: m.path.stat() for name, m in first.items()}
    again = _gguf_demos(tmp_path)  # a second `mlos up`: the same files, not rewritten
    for name, m in again.items():
        assert m.path == first[name].path
        assert (m.path.stat().st_ino, m.path.stat().st_mtime_ns) == (stats[name].st_ino, stats[name].st_mtime_ns)
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["iris.onnx", "tiny-bert-embed.gguf", "tinyllama-test.gguf"]


def test_onnx_demo_models_are_unchanged_by_generation(tmp_path: Path) -> None:
    models = prepare_demo_models(tmp_path, generation=True)
    assert {m.name for m in models} == EXPECTED_NAMES | set(GGUF_TASKS)
    assert {m.name for m in models if m.task == "infer"} == EXPECTED_NAMES
    assert not any(m.path.suffix == ".gguf" for m in prepare_demo_models(tmp_path / "plain"))


def test_a_damaged_gguf_demo_file_is_rewritten(tmp_path: Path) -> None:
    path = _gguf_demos(tmp_path)["tinyllama-test"].path
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # truncated, e.g. by a crash of an older writer
    _gguf_demos(tmp_path)
    assert path.read_bytes() == good


@pytest.mark.parametrize(("package", "hint"), [("llama_cpp", "make install"), ("gguf", "pip install -e '.[llm]'")])
def test_gguf_demos_skipped_without_llama_cpp_or_gguf(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture, package: str, hint: str
) -> None:
    real_find_spec = demo.importlib.util.find_spec
    monkeypatch.setattr(demo.importlib.util, "find_spec", lambda name, *a: None if name == package else real_find_spec(name, *a))
    with caplog.at_level(logging.WARNING, logger=demo.__name__):
        names = {m.name for m in prepare_demo_models(tmp_path, generation=True)}
    assert names == EXPECTED_NAMES
    assert "'tinyllama-test', 'tiny-bert-embed' skipped" in caplog.text and hint in caplog.text
    assert not list((tmp_path / "demo").glob("*.gguf"))


def test_gguf_sample_inputs_are_text_for_the_front_door(tmp_path: Path) -> None:
    import llama_cpp

    models = _gguf_demos(tmp_path)
    prompt = models["tinyllama-test"].sample_inputs(seed=1)["text_input"]
    assert prompt.dtype == object and prompt.shape == (1,) and isinstance(prompt[0], bytes)
    with pytest.raises(ValueError, match=r"one prompt per request"):
        models["tinyllama-test"].sample_inputs(batch=2)
    texts = models["tiny-bert-embed"].sample_inputs(batch=5, seed=0)["text_input"]
    assert texts.shape == (5,) and texts[0] == texts[4] != texts[1]
    assert list(models["tiny-bert-embed"].sample_inputs(batch=5, seed=0)["text_input"]) == list(texts)
    embedder = llama_cpp.Llama(str(models["tiny-bert-embed"].path), embedding=True, n_threads=1, verbose=False)
    vectors = np.array(embedder.embed([t.decode() for t in texts]))
    assert vectors.shape == (5, 64) and np.isfinite(vectors).all()
