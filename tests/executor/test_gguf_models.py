"""The tiny GGUF test models (mlos_cli.gguf_models), loaded by the real llama.cpp (llama-cpp-python)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import gguf
import llama_cpp
import numpy as np
import pytest

from mlos_cli import gguf_models
from mlos_cli.gguf_models import TINY_BERT, TINY_LLAMA

PROMPTS = ("the quick brown fox", "hello world, how are you")
MAX_TOKENS = 24
MAX_FILE_BYTES = 2 << 20


@pytest.fixture(scope="module")
def llama_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gguf_models.write_tiny_llama(tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")


@pytest.fixture(scope="module")
def bert_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gguf_models.write_tiny_bert(tmp_path_factory.mktemp("gguf") / "tiny-bert.gguf")


@pytest.fixture(scope="module")
def llm(llama_path: Path) -> llama_cpp.Llama:
    return llama_cpp.Llama(str(llama_path), n_ctx=256, n_threads=1, verbose=False)


@pytest.fixture(scope="module")
def embedder(bert_path: Path) -> llama_cpp.Llama:
    return llama_cpp.Llama(str(bert_path), n_ctx=TINY_BERT.context_length, n_threads=1, embedding=True, verbose=False)


def _greedy(model: llama_cpp.Llama, prompt: str, max_tokens: int = MAX_TOKENS) -> dict:
    choice = model.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, logprobs=None)["choices"][0]
    return {"text": choice["text"], "finish_reason": choice["finish_reason"]}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("build", [gguf_models.tiny_llama_bytes, gguf_models.tiny_bert_bytes])
def test_same_seed_same_bytes_other_seed_other_bytes(build) -> None:  # type: ignore[no-untyped-def]
    first, again, other = build(seed=0), build(seed=0), build(seed=1)
    assert _sha256(first) == _sha256(again)
    assert _sha256(first) != _sha256(other)
    assert len(first) == len(other) < MAX_FILE_BYTES


def test_files_are_written_atomically_and_match_the_bytes(llama_path: Path, bert_path: Path) -> None:
    assert llama_path.read_bytes() == gguf_models.tiny_llama_bytes(0)
    assert bert_path.read_bytes() == gguf_models.tiny_bert_bytes(0)
    for path in (llama_path, bert_path):
        assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left beside it


def test_llama_header_as_gguf_reads_it(llama_path: Path) -> None:
    reader = gguf.GGUFReader(llama_path)
    fields = {name: field.contents() for name, field in reader.fields.items()}
    assert fields["general.architecture"] == "llama"
    assert fields["llama.context_length"] == TINY_LLAMA.context_length
    assert fields["llama.attention.head_count_kv"] == TINY_LLAMA.n_kv_heads
    assert fields["tokenizer.ggml.model"] == "llama"
    tokens, types = fields["tokenizer.ggml.tokens"], fields["tokenizer.ggml.token_type"]
    assert tokens[:3] == ["<unk>", "<s>", "</s>"]
    assert tokens[3:259] == [f"<0x{b:02X}>" for b in range(256)]
    assert set(types[3:259]) == {int(gguf.TokenType.BYTE)}
    assert len(tokens) - 259 >= 300  # a few hundred word pieces
    assert {t.name for t in reader.tensors} >= {"token_embd.weight", "output.weight", "blk.1.ffn_down.weight"}


def test_llama_loads_with_its_shape(llm: llama_cpp.Llama) -> None:
    tokens, _, _ = gguf_models.llama_vocab()
    assert llm.n_vocab() == len(tokens)
    assert llm.n_embd() == TINY_LLAMA.n_embd
    assert llm.n_ctx() == 256
    assert llm.metadata["general.architecture"] == "llama"
    assert llm.token_eos() == 2 and llm.token_bos() == 1


@pytest.mark.parametrize("text", ["the quick brown fox", "Café ☕ 日本語 ünïcödé\ttabs\nlines", "zzz qqq 12345 !?"])
def test_any_utf8_text_tokenizes_and_round_trips(llm: llama_cpp.Llama, text: str) -> None:
    ids = llm.tokenize(text.encode(), add_bos=False)
    assert ids and 0 not in ids  # never <unk>: unknown characters fall back to byte tokens
    assert llm.detokenize(ids).decode().strip() == text


def test_common_words_are_single_pieces(llm: llama_cpp.Llama) -> None:
    assert len(llm.tokenize(b"the quick brown fox", add_bos=False)) == 4


def test_greedy_generation_is_deterministic_and_runs_to_max_tokens(llm: llama_cpp.Llama, llama_path: Path) -> None:
    again = llama_cpp.Llama(str(llama_path), n_ctx=256, n_threads=1, verbose=False)
    outputs = []
    for prompt in PROMPTS:
        first, second, reloaded = _greedy(llm, prompt), _greedy(llm, prompt), _greedy(again, prompt)
        assert first == second == reloaded
        assert first["finish_reason"] == "length"  # no </s> before max_tokens
        assert len(llm.tokenize(first["text"].encode(), add_bos=False)) >= MAX_TOKENS // 2
        outputs.append(first["text"])
    assert outputs[0] != outputs[1]


def test_another_seed_generates_other_text(tmp_path: Path, llm: llama_cpp.Llama) -> None:
    other = llama_cpp.Llama(str(gguf_models.write_tiny_llama(tmp_path / "seed1.gguf", seed=1)), n_ctx=256, verbose=False)
    assert _greedy(other, PROMPTS[0]) != _greedy(llm, PROMPTS[0])


@pytest.mark.parametrize("prompt", [b"the dog", b"hello", "Café ☕".encode()])
def test_eos_is_never_likely(llama_path: Path, prompt: bytes) -> None:
    """The logits after a prompt: </s> and the byte tokens sit at exactly 0, below the best pieces."""
    model = llama_cpp.Llama(str(llama_path), n_ctx=256, n_threads=1, logits_all=True, verbose=False)
    model.eval(model.tokenize(prompt))
    logits = np.array(model.scores[model.n_tokens - 1])
    assert logits[2] == 0.0 and not logits[3:259].any()
    assert logits.argmax() >= 259 and logits.max() > 5.0


def test_bert_loads_with_its_shape(embedder: llama_cpp.Llama) -> None:
    assert embedder.n_embd() == TINY_BERT.n_embd
    assert embedder.n_vocab() == len(gguf_models.bert_vocab())
    assert embedder.metadata["general.architecture"] == "bert"
    assert embedder.metadata["bert.pooling_type"] == str(int(gguf.PoolingType.MEAN))


def test_bert_tokenizes_with_cls_and_sep(embedder: llama_cpp.Llama) -> None:
    ids = embedder.tokenize(b"the quick xyzzy!")
    vocab = gguf_models.bert_vocab()
    assert ids[0] == vocab.index("[CLS]") and ids[-1] == vocab.index("[SEP]")
    assert vocab[ids[1]] == "\u2581the"
    assert vocab.index("[UNK]") not in ids  # unknown words are spelled from single letters


def test_bert_embeds_any_text_deterministically(embedder: llama_cpp.Llama) -> None:
    texts = ["the dog", "a quick brown fox jumps", "Ünïcödé ☕ text with no piece"]
    vectors = np.array(embedder.embed(texts))
    assert vectors.shape == (len(texts), TINY_BERT.n_embd)
    assert np.isfinite(vectors).all()
    assert np.abs(vectors[0] - vectors[1]).max() > 1e-3
    assert np.abs(vectors[1] - vectors[2]).max() > 1e-3
    np.testing.assert_allclose(np.array(embedder.embed(texts[0])), vectors[0], atol=1e-5)  # batched vs alone: rounding
    np.testing.assert_array_equal(np.array(embedder.embed(texts)), vectors)
