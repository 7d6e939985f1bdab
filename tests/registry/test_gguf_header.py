"""The bounded GGUF header reader: valid files from GGUFWriter (checked against gguf's own reader),
and hostile bytes, each refused with InvalidModelFile naming a byte offset, quickly."""

from __future__ import annotations

import io
import struct
import time
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf_testkit import HOSTILE, kv_array, kv_string, kv_u32, minimal_llama, string, write_gguf

from mlos_registry import gguf_cursor, gguf_header
from mlos_registry.errors import InvalidModelFile
from mlos_registry.gguf_header import GGUFArray, read_header

VT = gguf.GGUFValueType
QUICK_S = 1.0  # a generous bound, not a target: a hostile header must never make the parser work long


def _parse(data: bytes, **bounds: int) -> gguf_header.GGUFHeader:
    return read_header(io.BytesIO(data), "'evil.gguf'", **bounds)


def _refused(data: bytes, *words: str, **bounds: int) -> str:
    started = time.perf_counter()
    with pytest.raises(InvalidModelFile) as info:
        _parse(data, **bounds)
    assert time.perf_counter() - started < QUICK_S
    message = info.value.message
    assert message.startswith("'evil.gguf' is not a valid GGUF file: ") and "at byte offset" in message
    for word in words:
        assert word in message
    return message


def test_writer_file_matches_ggufs_own_reader(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", file_type=gguf.LlamaFileType.MOSTLY_F16)
    with open(path, "rb") as f:
        parsed = read_header(f)
    reference = gguf.GGUFReader(path)  # fine on a well-formed file
    assert parsed.version == 3 and parsed.tensor_count == len(reference.tensors) == 2
    assert parsed.data_offset == reference.data_offset
    assert parsed.tensor_info_offset == reference.tensors[0].field.offset
    for mine, theirs in zip(parsed.tensors, reference.tensors, strict=True):
        assert (mine.name, list(mine.dims), mine.ggml_type) == (theirs.name, theirs.shape.tolist(), theirs.tensor_type)
        assert mine.elements == theirs.n_elements and parsed.data_offset + mine.offset == theirs.data_offset
    meta = parsed.metadata
    assert meta["general.architecture"] == "llama" and meta["llama.context_length"] == 4096
    assert meta["general.file_type"] == gguf.LlamaFileType.MOSTLY_F16
    tokens = meta["tokenizer.ggml.tokens"]
    assert tokens == GGUFArray("STRING", 32, tuple(f"t{i}" for i in range(16)))
    assert meta["tokenizer.ggml.scores"] == GGUFArray("FLOAT32", 32, (0.0,) * 16)
    assert set(meta) == {key for key in reference.fields if not key.startswith("GGUF.")}


def test_a_million_token_vocabulary_parses_fast() -> None:
    tokens = b"".join(string(b"tok%d" % i) for i in range(1_000_000))
    data = minimal_llama((kv_array(b"tokenizer.ggml.tokens", VT.STRING, 1_000_000, tokens),
                          kv_array(b"tokenizer.ggml.token_type", VT.INT32, 1_000_000, b"\x01\x00\x00\x00" * 1_000_000)))
    started = time.perf_counter()
    parsed = _parse(data)
    assert time.perf_counter() - started < QUICK_S
    assert parsed.metadata["tokenizer.ggml.tokens"] == GGUFArray("STRING", 1_000_000, tuple(f"tok{i}" for i in range(16)))
    assert parsed.metadata["tokenizer.ggml.token_type"] == GGUFArray("INT32", 1_000_000, (1,) * 16)


def test_a_long_token_crossing_the_read_window_parses() -> None:
    long = b"x" * (gguf_cursor.WINDOW_BYTES + 100)
    tokens = b"".join(string(b"a" * 40) for _ in range(7000)) + string(long) + string(b"end")
    parsed = _parse(minimal_llama((kv_array(b"tokenizer.ggml.tokens", VT.STRING, 7002, tokens), kv_u32(b"after", 9))))
    assert parsed.metadata["tokenizer.ggml.tokens"].length == 7002  # type: ignore[union-attr]
    assert parsed.metadata["after"] == 9


def test_an_array_of_arrays_is_allowed_once() -> None:
    inner = struct.pack("<IQ", VT.UINT8, 2) + b"\x01\x02"
    parsed = _parse(minimal_llama((kv_array(b"pairs", VT.ARRAY, 3, inner * 3),)))
    assert parsed.metadata["pairs"] == GGUFArray("ARRAY", 3, ())


def test_a_truncation_anywhere_is_refused(tmp_path: Path) -> None:
    """At every byte of the header (so at every section boundary) and inside the tensor data."""
    data = write_gguf(tmp_path / "m.gguf").read_bytes()
    parsed = _parse(data)
    boundaries = {4, 8, 16, 24, parsed.tensor_info_offset, parsed.data_offset, len(data) - 1}
    cuts = sorted(boundaries | set(range(parsed.data_offset)) | {parsed.data_offset + 100})
    started = time.perf_counter()
    for cut in cuts:
        with pytest.raises(InvalidModelFile, match="byte offset"):
            _parse(data[:cut])
    assert time.perf_counter() - started < QUICK_S * 5  # ~1,000 parses
    assert "runs past the end of the file" in _refused(data[:-1])


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_bytes_are_refused_quickly(case: str) -> None:
    data, words = HOSTILE[case]
    _refused(data, words)


def test_big_endian_files_are_refused_by_name(tmp_path: Path) -> None:
    data = write_gguf(tmp_path / "be.gguf", endianess=gguf.GGUFEndian.BIG).read_bytes()
    _refused(data, "big-endian", "version 50331648")


def test_budgets_bound_the_walk() -> None:
    tokens = b"".join(string(b"t") for _ in range(1000))
    data = minimal_llama((kv_array(b"tokenizer.ggml.tokens", VT.STRING, 1000, tokens),))
    assert _parse(data).metadata["tokenizer.ggml.tokens"].length == 1000  # type: ignore[union-attr]
    _refused(data, "budget of 2000 bytes", read_budget_bytes=2000)
    _refused(data, "more parsing steps", step_budget=500)


def test_values_of_every_scalar_type() -> None:
    kvs = [string(b"s") + struct.pack("<I", VT.STRING) + string(b"caf\xc3\xa9"),
           string(b"b") + struct.pack("<IB", VT.BOOL, 1),
           string(b"f") + struct.pack("<If", VT.FLOAT32, 0.5),
           string(b"d") + struct.pack("<Id", VT.FLOAT64, -2.25),
           string(b"i") + struct.pack("<Iq", VT.INT64, -7),
           string(b"u") + struct.pack("<IH", VT.UINT16, 65535),
           kv_array(b"a", VT.INT8, 3, struct.pack("<3b", -1, 0, 1)),
           kv_string(b"bad", b"\xff")]
    meta = _parse(minimal_llama(tuple(kvs))).metadata
    assert (meta["s"], meta["b"], meta["f"], meta["d"], meta["i"], meta["u"]) == ("café", True, 0.5, -2.25, -7, 65535)
    assert meta["a"] == GGUFArray("INT8", 3, (-1, 0, 1))
    assert meta["bad"] == "\ufffd"  # values are informational: undecodable bytes are replaced, not refused


def test_tensor_elements_and_data_offset(tmp_path: Path) -> None:
    tensors = {"a": np.zeros((3, 64), np.float32), "b": np.zeros(5, np.float16)}
    parsed = _parse(write_gguf(tmp_path / "m.gguf", tensors=tensors).read_bytes())
    assert [(t.name, t.dims, t.elements) for t in parsed.tensors] == [("a", (64, 3), 192), ("b", (5,), 5)]
    assert parsed.data_offset % 32 == 0 and parsed.data_offset >= parsed.tensor_info_offset
