"""GGUF files for the registry tests: valid ones written with the `gguf` package's GGUFWriter (tiny
tensors: the registry reads headers only), and hostile bytes built by hand."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np

from mlos_cli.gguf_models import finish_writer

VT = gguf.GGUFValueType

VOCAB = 32


def write_gguf(
    path: Path,
    arch: str = "llama",
    *,
    context_length: int = 4096,
    embedding_length: int = 64,
    file_type: int | None = gguf.LlamaFileType.MOSTLY_Q8_0,
    pooling_type: gguf.PoolingType | None = None,
    vocab: int = VOCAB,
    tensors: dict[str, np.ndarray] | None = None,
    endianess: gguf.GGUFEndian = gguf.GGUFEndian.LITTLE,
    name: str = "",
) -> Path:
    """A GGUF file that looks like a small `arch` model (header facts, tokenizer, a few tensors)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(path, arch, endianess=endianess)
    writer.add_name(name or f"tiny-{arch}")
    writer.add_context_length(context_length)
    writer.add_embedding_length(embedding_length)
    writer.add_block_count(2)
    writer.add_head_count(4)
    if file_type is not None:
        writer.add_file_type(file_type)
    if pooling_type is not None:
        writer.add_pooling_type(pooling_type)
    writer.add_tokenizer_model("bert" if arch == "bert" else "llama")
    writer.add_token_list([f"t{i}" for i in range(vocab)])
    writer.add_token_scores([0.0] * vocab)
    if tensors is None:
        tensors = {
            "token_embd.weight": np.zeros((vocab, embedding_length), np.float16),
            "output_norm.weight": np.ones(embedding_length, np.float32),
        }
    finish_writer(writer, tensors)
    return path


# ---- hand-made bytes (little-endian GGUF v3 unless said otherwise) ----

def header(version: int = 3, tensors: int = 0, kvs: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, kvs)


def string(raw: bytes) -> bytes:
    return struct.pack("<Q", len(raw)) + raw


def kv_u32(key: bytes, value: int) -> bytes:
    return string(key) + struct.pack("<II", gguf.GGUFValueType.UINT32, value)


def kv_string(key: bytes, value: bytes) -> bytes:
    return string(key) + struct.pack("<I", gguf.GGUFValueType.STRING) + string(value)


def kv_array(key: bytes, item_type: int, count: int, items: bytes = b"") -> bytes:
    return string(key) + struct.pack("<IIQ", gguf.GGUFValueType.ARRAY, item_type, count) + items


def tensor_info(name: bytes, dims: tuple[int, ...], ggml_type: int = 0, offset: int = 0) -> bytes:
    return string(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims) + struct.pack(
        "<IQ", ggml_type, offset
    )


def minimal_llama(extra_kvs: tuple[bytes, ...] = (), tensors: tuple[bytes, ...] = (), data: bytes = b"") -> bytes:
    """A valid header of a llama model with the keys the registry needs, then `data` after alignment."""
    kvs = (kv_string(b"general.architecture", b"llama"), kv_u32(b"llama.context_length", 256), *extra_kvs)
    head = header(tensors=len(tensors), kvs=len(kvs)) + b"".join(kvs) + b"".join(tensors)
    return head + b"\x00" * (-len(head) % 32) + data


# name -> (bytes, words the refusal must contain)
HOSTILE: dict[str, tuple[bytes, str]] = {
    # The crafted file that hangs gguf 0.19's GGUFReader (an array of 2^63 bytes in a 51-byte file).
    "array of 2^63 bytes": (header(kvs=1) + kv_array(b"arr", VT.UINT8, 2**63), "claims 9223372036854775808 items"),
    "array of 2^60 u32": (header(kvs=1) + kv_array(b"arr", VT.UINT32, 2**60) + b"\x00" * 64, "claims"),
    "array of 2^60 strings": (header(kvs=1) + kv_array(b"arr", VT.STRING, 2**60) + b"\x00" * 64, "claims"),
    "array of 2^40 arrays": (header(kvs=1) + kv_array(b"arr", VT.ARRAY, 2**40) + b"\x00" * 64, "claims"),
    "tensor count 2^63": (header(tensors=2**63) + b"\x00" * 64, "tensor count 9223372036854775808"),
    "tensor count over the limit": (header(tensors=1_000_001) + b"\x00" * 64, "over the limit of 1000000"),
    "metadata count 2^63": (header(kvs=2**63) + kv_u32(b"abc", 7), "metadata count 9223372036854775808 is over"),
    "more entries than bytes": (header(kvs=3) + kv_u32(b"abc", 7), "needs at least 39 bytes but only 19 remain"),
    "metadata count over the limit": (header(kvs=100_001) + b"\x00" * 64, "over the limit of 100000"),
    "key length past the end": (header(kvs=1) + struct.pack("<Q", 1000) + b"abcdefghij", "needs 1000 bytes but only 10"),
    "value length 2^62": (header(kvs=1) + string(b"k") + struct.pack("<IQ", VT.STRING, 2**62), "over the limit"),
    "string value past the end": (header(kvs=1) + string(b"k") + struct.pack("<IQ", VT.STRING, 50) + b"x", "truncated"),
    "a bad string deep in an array": (header(kvs=1) + kv_array(b"t", VT.STRING, 20, string(b"a") * 17 + struct.pack(
        "<Q", 2**62) + b"\x00" * 64), "over the limit of 16777216"),
    "a string deep in an array past the end": (header(kvs=1) + kv_array(b"t", VT.STRING, 20, string(b"a") * 17 + struct.pack(
        "<Q", 500) + b"\x00" * 64), "needs 500 bytes but only"),
    "key over 64 KiB": (header(kvs=1) + string(b"k" * (64 * 1024 + 1)) + struct.pack("<II", VT.UINT32, 0),
                        "over the limit of 65536"),
    "nested arrays 3 deep": (header(kvs=1) + kv_array(b"n", VT.ARRAY, 1, struct.pack("<IQ", VT.ARRAY, 1)
                                                       + struct.pack("<IQ", VT.UINT8, 1) + b"\x00"), "nests arrays"),
    "unknown value type": (header(kvs=1) + string(b"k") + struct.pack("<II", 13, 0), "unknown value type 13"),
    "unknown array item type": (header(kvs=1) + kv_array(b"k", 0xFFFFFFFF, 0), "unknown value type 4294967295"),
    "non-UTF-8 key": (header(kvs=1) + string(b"\xff\xfekey") + struct.pack("<II", VT.UINT32, 0), "not valid UTF-8"),
    "duplicate key": (header(kvs=2) + kv_u32(b"k", 1) + kv_u32(b"k", 2), "appears twice"),
    "version 1": (header(version=1), "version 1 is not supported, only versions 2 and 3"),
    "version 4": (header(version=4), "version 4 is not supported"),
    "bad magic": (b"GGUX" + header()[4:], "magic number"),
    "five dimensions": (minimal_llama(tensors=(tensor_info(b"w", (1, 1, 1, 1, 1)),)), "5 dimensions"),
    "element count overflow": (minimal_llama(tensors=(tensor_info(b"w", (2**32, 2**32, 2**32)),)), "2^63-1 elements"),
    "unknown ggml type": (minimal_llama(tensors=(tensor_info(b"w", (4,), ggml_type=99),), data=b"\x00" * 64),
                          "unknown ggml type 99"),
    "duplicate tensor name": (minimal_llama(tensors=(tensor_info(b"w", (4,)), tensor_info(b"w", (4,), offset=32)),
                                            data=b"\x00" * 64), "appears twice"),
    "tensor past the end": (minimal_llama(tensors=(tensor_info(b"w", (1000,)),), data=b"\x00" * 64), "past the end"),
    "misaligned tensor": (minimal_llama(tensors=(tensor_info(b"w", (4,), offset=4),), data=b"\x00" * 64), "aligned"),
    "partial quant block": (minimal_llama(tensors=(tensor_info(b"w", (31,), ggml_type=8),), data=b"\x00" * 64),
                            "block size 32"),
    "bad alignment": (minimal_llama((kv_u32(b"general.alignment", 24),)), "power of two"),
}
