"""The bench-peers harness's pieces in this process: perf_analyzer input files and the llama-cpp-python floor."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def peers_models(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCH))
    from peers import models

    return models


def test_the_gguf_input_file_holds_the_texts_and_the_onnx_one_b64_floats(peers_models, tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    bert = peers_models.MODELS["tiny-bert-embed"].prepared(tmp_path / "models")
    assert bert.path() == tmp_path / "models" / "tiny-bert-embed.gguf" and bert.path().stat().st_size > 0
    data = json.loads(peers_models.write_pa_input(bert, 0, tmp_path / "bert.json").read_text())
    assert data == {"data": [{"text_input": {"content": ["the quick brown fox jumps over the lazy dog"],
                                             "shape": [1]}}]}  # fmt: skip
    iris = peers_models.MODELS["iris"]
    data = json.loads(peers_models.write_pa_input(iris, 8, tmp_path / "iris.json").read_text())
    entry = data["data"][0]["float_input"]
    assert entry["shape"] == [2]  # batching: perf_analyzer adds the first dim
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(entry["b64"]), np.float32).reshape(3, 2),
                                  iris.inputs()["float_input"])  # fmt: skip
    with pytest.raises(RuntimeError, match="prepared"):
        peers_models.MODELS["tiny-bert-embed"].path()  # a built file needs its work folder


def test_the_llama_floor_serialises_threads_on_one_llama(peers_models, tmp_path: Path) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    from peers.inproc import LlamaFloor, floor_row

    bert = peers_models.MODELS["tiny-bert-embed"].prepared(tmp_path)
    floor = LlamaFloor.open(bert)
    try:
        args = argparse.Namespace(floor_warmup_s=0.05, floor_duration_s=0.3)
        measured = floor_row("llama-inproc", floor, 8, args)  # 8 threads, one context: no abort, no errors
        assert measured["errors"] == {} and measured["request_count"] > 0
        assert measured["cpu_ms_per_request"]["llama-inproc"] > 0
        got = floor.outputs()["embedding"]
    finally:
        floor.close()
    alone = llama_cpp.Llama(model_path=str(bert.path()), embedding=True, n_ctx=512, n_threads=1, verbose=False)
    try:
        want = np.asarray(alone.embed(["the quick brown fox jumps over the lazy dog"]), dtype=np.float32)
    finally:
        alone.close()
    assert got.shape == (1, 64)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_gguf_model_without_llama_cpp_is_skipped_with_the_reason(peers_models, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    pytest.importorskip("gguf")
    import bench_peers

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` now raises ModuleNotFoundError
    args = bench_peers.parse_args(["--quick", "--models", "tiny-bert-embed", "--servers", "llama-inproc",
                                   "--idle-timeout", "0"])  # fmt: skip
    out = bench_peers.run(args, tmp_path)
    assert out["rows"] == [] and out["models"] == {}
    (skip,) = out["skipped"]
    assert skip["server"] == "*" and skip["model"] == "tiny-bert-embed"
    assert "llama_cpp" in skip["reason"] and "make install" in skip["reason"]
