"""Tiny GGUF models for tests and the demo, written with the ``gguf`` package (no download).

- ``write_tiny_llama``: a llama-architecture generation model (2 layers, n_embd 64, 4 query heads,
  2 KV heads, n_ff 128, context 512, F32) with a SentencePiece-style ("llama") vocabulary:
  <unk> <s> </s>, the 256 byte-fallback tokens <0x00>..<0xFF> and ~640 pieces (ASCII characters,
  English word prefixes, suffixes), so any UTF-8 text tokenizes (characters outside the pieces
  fall back to bytes).
- ``write_tiny_bert``: a BERT-architecture embedding model (2 layers, n_embd 64, mean pooling) with a
  WordPiece ("bert") vocabulary: [PAD] [UNK] [CLS] [SEP] [MASK] and ~360 lowercase pieces; llama.cpp
  with ``embedding=True`` returns one vector of ``TINY_BERT.n_embd`` floats for any text.

Contract: the weights are random from ``numpy.random.default_rng(seed)``, so the same seed gives the
same bytes (and llama.cpp's greedy generation from the file is deterministic). The output rows of
the llama model's control and byte tokens are zero: their logits are exactly 0 while ordinary
pieces get random logits with a standard deviation of ~4, so greedy generation never picks </s>
and runs to max_tokens, and its text is made of word pieces. Both files stay under 1 MB.
Files are written atomically (a temp file beside the target, then renamed), and left alone when
they already hold the same bytes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from mlos_cli.demo import write_if_changed

SPACE = "\u2581"  # SentencePiece's word-start marker, also llama.cpp's WordPiece word start

WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this have from or one "
    "had by word but not what all were we when your can said there use an each which she do how their "
    "if will up other about out many then them these so some her would make like him into time has "
    "look two more write go see number no way could people my than first water been call who oil its "
    "now find long down day did get come made may part over new sound take only little work know place "
    "year live me back give most very after thing our just name good sentence man think say great where "
    "help through much before line right too mean old any same tell boy follow came want show also "
    "around form three small set put end does another well large must big even such because turn here "
    "why ask went men read need land different home us move try kind hand picture again change off play "
    "spell air away animal house point page letter mother answer found study still learn should world "
    "hello quick brown fox jumps lazy dog model token server"
).split()
FRAGMENTS = "ing ed er es ly tion ment ness able al ous ive est ful less ity ant ent ers ish s".split()
CHARS = [chr(c) for c in range(33, 127)]  # printable ASCII, no space


@dataclass(frozen=True)
class TinyShape:
    """Hyperparameters of a tiny model; ``n_kv_heads`` matters to llama only."""

    n_embd: int
    n_heads: int
    n_kv_heads: int
    n_layers: int
    n_ff: int
    context_length: int


TINY_LLAMA = TinyShape(n_embd=64, n_heads=4, n_kv_heads=2, n_layers=2, n_ff=128, context_length=512)
# A llama whose token costs a few milliseconds on one core (~42 MB), for bench/bench_generation.py.
BENCH_LLAMA = TinyShape(n_embd=384, n_heads=6, n_kv_heads=6, n_layers=6, n_ff=1024, context_length=2048)
SHAPES = {"tiny": TINY_LLAMA, "bench": BENCH_LLAMA}
TINY_BERT = TinyShape(n_embd=64, n_heads=4, n_kv_heads=4, n_layers=2, n_ff=128, context_length=512)
LLAMA_SPECIALS = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4
LOGIT_STD = 4.0  # llama: standard deviation of an ordinary piece's logit (RMS-normed state of norm sqrt(n_embd))


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def llama_vocab() -> tuple[list[str], list[float], list[int]]:
    """(tokens, scores, token types) of the tiny llama: specials, bytes, then word pieces.

    llama.cpp's SentencePiece tokenizer merges adjacent symbols pairwise into known pieces, so every
    piece longer than one character has its one-shorter prefix in the vocabulary too."""
    pieces = [SPACE, *CHARS]
    for word in WORDS:
        pieces += [SPACE + word[:k] for k in range(1, len(word) + 1)]
    for fragment in FRAGMENTS:
        pieces += [fragment[:k] for k in range(2, len(fragment) + 1)]
    pieces = _unique(pieces)
    tokens = [*LLAMA_SPECIALS, *(f"<0x{b:02X}>" for b in range(256)), *pieces]
    t = gguf.TokenType
    types = [int(t.UNKNOWN), int(t.CONTROL), int(t.CONTROL)] + [int(t.BYTE)] * 256 + [int(t.NORMAL)] * len(pieces)
    scores = [0.0] * (len(LLAMA_SPECIALS) + 256) + [-float(i) for i in range(len(pieces))]
    return tokens, scores, types


def bert_vocab() -> list[str]:
    """Tokens of the tiny BERT in llama.cpp's form: a word-initial piece starts with SPACE, a
    continuation piece has no mark (the converter's rewrite of WordPiece's "##")."""
    lower = [c for c in CHARS if not c.isupper()]
    pieces = [SPACE + w for w in WORDS] + [SPACE + c for c in lower] + lower + FRAGMENTS
    return [*BERT_SPECIALS, *_unique(pieces)]


def tiny_llama_bytes(seed: int = 0, shape: TinyShape = TINY_LLAMA) -> bytes:
    """The tiny llama GGUF file's bytes for ``seed`` (see the module docstring)."""
    return _build(lambda path: _write_llama(path, seed, shape))


def tiny_bert_bytes(seed: int = 0) -> bytes:
    """The tiny BERT embedding GGUF file's bytes for ``seed`` (see the module docstring)."""
    return _build(lambda path: _write_bert(path, seed))


def write_tiny_llama(path: str | os.PathLike[str], seed: int = 0, shape: TinyShape = TINY_LLAMA) -> Path:
    """Writes the tiny llama GGUF (or one of another ``shape``, e.g. BENCH_LLAMA) to ``path``
    (atomically, only if its bytes differ); returns the path."""
    write_if_changed(Path(path), tiny_llama_bytes(seed, shape))
    return Path(path)


def write_tiny_bert(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """Writes the tiny BERT embedding GGUF to ``path`` (atomically, only if its bytes differ); returns the path."""
    write_if_changed(Path(path), tiny_bert_bytes(seed))
    return Path(path)


def _build(write: Callable[[Path], None]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="mlos-gguf-") as folder:
        path = Path(folder) / "model.gguf"
        write(path)
        return path.read_bytes()


def _name(tensor: gguf.MODEL_TENSOR, bid: int | None = None, suffix: str = "weight") -> str:
    return gguf.TENSOR_NAMES[tensor].format(bid=bid) + "." + suffix


def _normal(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    return (rng.standard_normal(shape) * std).astype(np.float32)


def finish_writer(w: gguf.GGUFWriter, tensors: dict[str, np.ndarray]) -> None:
    """Adds `tensors` and writes the header, key/values and tensor data; closes the writer."""
    for name, array in tensors.items():
        w.add_tensor(name, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _common_keys(w: gguf.GGUFWriter, name: str, shape: TinyShape) -> None:
    w.add_name(name)
    w.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    w.add_context_length(shape.context_length)
    w.add_embedding_length(shape.n_embd)
    w.add_block_count(shape.n_layers)
    w.add_feed_forward_length(shape.n_ff)
    w.add_head_count(shape.n_heads)


def _write_llama(path: Path, seed: int, shape: TinyShape = TINY_LLAMA) -> None:
    s, rng = shape, np.random.default_rng(seed)
    tokens, scores, types = llama_vocab()
    w = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    _common_keys(w, "mlos-tiny-llama", s)
    w.add_head_count_kv(s.n_kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(s.n_embd // s.n_heads)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    n, kv, ff, m = s.n_embd, s.n_kv_heads * (s.n_embd // s.n_heads), s.n_ff, gguf.MODEL_TENSOR
    output = _normal(rng, (len(tokens), n), LOGIT_STD / np.sqrt(n))
    output[: len(LLAMA_SPECIALS) + 256] = 0.0  # control and byte tokens: logit 0, never the argmax
    tensors = {
        _name(m.TOKEN_EMBD): _normal(rng, (len(tokens), n), 1.0),
        _name(m.OUTPUT_NORM): np.ones(n, np.float32),
        _name(m.OUTPUT): output,
    }
    for b in range(s.n_layers):
        tensors |= {
            _name(m.ATTN_NORM, b): np.ones(n, np.float32),
            _name(m.ATTN_Q, b): _normal(rng, (n, n), 1.0 / np.sqrt(n)),
            _name(m.ATTN_K, b): _normal(rng, (kv, n), 1.0 / np.sqrt(n)),
            _name(m.ATTN_V, b): _normal(rng, (kv, n), 1.0 / np.sqrt(n)),
            _name(m.ATTN_OUT, b): _normal(rng, (n, n), 1.0 / np.sqrt(n)),
            _name(m.FFN_NORM, b): np.ones(n, np.float32),
            _name(m.FFN_GATE, b): _normal(rng, (ff, n), 1.0 / np.sqrt(n)),
            _name(m.FFN_UP, b): _normal(rng, (ff, n), 1.0 / np.sqrt(n)),
            _name(m.FFN_DOWN, b): _normal(rng, (n, ff), 1.0 / np.sqrt(ff)),
        }
    finish_writer(w, tensors)


def _write_bert(path: Path, seed: int) -> None:
    s, rng = TINY_BERT, np.random.default_rng(seed)
    tokens = bert_vocab()
    w = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    _common_keys(w, "mlos-tiny-bert", s)
    w.add_layer_norm_eps(1e-12)
    w.add_causal_attention(False)
    w.add_pooling_type(gguf.PoolingType.MEAN)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("bert")
    w.add_token_list(tokens)
    t = gguf.TokenType
    w.add_token_types([int(t.CONTROL)] * len(BERT_SPECIALS) + [int(t.NORMAL)] * (len(tokens) - len(BERT_SPECIALS)))
    w.add_token_type_count(2)
    w.add_pad_token_id(0)
    w.add_unk_token_id(1)
    w.add_bos_token_id(2)  # [CLS] opens every text
    w.add_sep_token_id(3)
    w.add_mask_token_id(4)
    w.add_add_bos_token(True)
    w.add_add_sep_token(True)

    n, ff, m = s.n_embd, s.n_ff, gguf.MODEL_TENSOR
    ones, zeros = np.ones(n, np.float32), np.zeros(n, np.float32)
    tensors = {
        _name(m.TOKEN_EMBD): _normal(rng, (len(tokens), n), 1.0),
        _name(m.TOKEN_TYPES): _normal(rng, (2, n), 0.1),
        _name(m.POS_EMBD): _normal(rng, (s.context_length, n), 0.1),
        _name(m.TOKEN_EMBD_NORM): ones,
        _name(m.TOKEN_EMBD_NORM, suffix="bias"): zeros,
    }
    for b in range(s.n_layers):
        for kind, rows, cols in ((m.ATTN_Q, n, n), (m.ATTN_K, n, n), (m.ATTN_V, n, n), (m.ATTN_OUT, n, n),
                                 (m.FFN_UP, ff, n), (m.FFN_DOWN, n, ff)):
            tensors[_name(kind, b)] = _normal(rng, (rows, cols), 1.0 / np.sqrt(cols))
            tensors[_name(kind, b, "bias")] = _normal(rng, (rows,), 0.02)
        for kind in (m.ATTN_OUT_NORM, m.LAYER_OUT_NORM):
            tensors[_name(kind, b)] = ones
            tensors[_name(kind, b, "bias")] = zeros
    finish_writer(w, tensors)
