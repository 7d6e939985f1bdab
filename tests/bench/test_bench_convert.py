"""Smoke test of bench/bench_convert.py on a tiny BERT (the bench itself converts the MiniLM)."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_convert_rows_cold_then_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    monkeypatch.syspath_prepend(str(TESTS.parent / "bench"))
    monkeypatch.syspath_prepend(str(TESTS / "registry"))
    from bench_convert import convert_rows
    from convert_testkit import tiny_model

    tiny_model("bert", tmp_path / "bert", "safetensors")
    cold, cached = convert_rows(tmp_path / "bert")
    assert (cold["case"], cached["case"]) == ("cold", "cached")
    assert cold["architecture"] == "BertModel" and cold["parameters"] > 0 and cold["onnx_bytes"] > 0
    assert cold["child_seconds"] > 0 and cached["seconds"] > 0
