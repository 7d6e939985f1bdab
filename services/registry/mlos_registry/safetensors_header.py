"""A bounded reader of the SafeTensors header, run before any library touches the file.

Layout: an 8-byte little-endian header length N, N bytes of JSON (a dict: tensor name ->
{"dtype", "shape", "data_offsets": [begin, end]}, plus an optional "__metadata__" dict of
strings), then the data. Every tensor's byte range must lie inside the data, match its dtype
and shape, and not overlap another's. Errors name the tensor and the rule it breaks
(InvalidModelFile); nothing here allocates more than the header's declared length, which is
capped. Used by the conversion child (convert_child.py), not in the registry's own process.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from mlos_registry.errors import InvalidModelFile

# The safetensors library itself refuses headers over 100 MB.
MAX_HEADER_BYTES = 100 * 1024 * 1024
MAX_DIMS = 16
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}


@dataclass(frozen=True, slots=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    begin: int  # byte offsets inside the data section
    end: int


@dataclass(frozen=True, slots=True)
class SafetensorsHeader:
    tensors: dict[str, TensorEntry]
    metadata: dict[str, str]
    data_bytes: int

    @property
    def parameter_count(self) -> int:
        return sum(math.prod(t.shape) for t in self.tensors.values())


def _entry(name: str, raw: object, data_bytes: int, shown: str) -> TensorEntry:
    what = f"{shown}: tensor {name[:80]!r}"
    if not isinstance(raw, dict):
        raise InvalidModelFile(f"{what} is not an object in the SafeTensors header")
    dtype, shape, offsets = raw.get("dtype"), raw.get("shape"), raw.get("data_offsets")
    if dtype not in DTYPE_BYTES:
        raise InvalidModelFile(f"{what} has unknown dtype {str(dtype)[:20]!r} (known: {', '.join(DTYPE_BYTES)})")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InvalidModelFile(f"{what} has shape {str(shape)[:80]}: want a list of at most {MAX_DIMS} non-negative integers")
    need_bytes = math.prod(shape) * DTYPE_BYTES[dtype]
    if need_bytes > data_bytes:
        raise InvalidModelFile(
            f"{what} has shape {shape[:MAX_DIMS]} ({dtype}) needing {need_bytes} bytes, more than the file's "
            f"{data_bytes} bytes of data"
        )
    if (
        not isinstance(offsets, list) or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise InvalidModelFile(f"{what} has data_offsets {str(offsets)[:80]}: want [begin, end] integers")
    begin, end = offsets
    if not 0 <= begin <= end <= data_bytes:
        raise InvalidModelFile(
            f"{what} has data_offsets [{begin}, {end}] outside the file's data section (0..{data_bytes} bytes)"
        )
    if end - begin != need_bytes:
        raise InvalidModelFile(
            f"{what}: data_offsets [{begin}, {end}] span {end - begin} bytes but shape {shape} ({dtype}) needs {need_bytes}"
        )
    return TensorEntry(dtype, tuple(shape), begin, end)


def json_object(text: bytes, what: str) -> dict:
    """`text` parsed as a JSON object, or InvalidModelFile saying what `what` is instead."""
    try:
        parsed = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidModelFile(f"{what} is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(parsed, dict):
        raise InvalidModelFile(f"{what} is JSON but not an object")
    return parsed


def read_header(path: Path, shown: str) -> SafetensorsHeader:
    """Reads and checks the header of the SafeTensors file at `path` (`shown` names it in errors)."""
    with path.open("rb") as f:
        file_bytes = f.seek(0, 2)
        f.seek(0)
        head = f.read(8)
        if len(head) < 8:
            raise InvalidModelFile(f"{shown} is truncated: {file_bytes} bytes, less than the 8-byte header length")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > MAX_HEADER_BYTES:
            raise InvalidModelFile(f"{shown}: header length {header_len} is over the {MAX_HEADER_BYTES}-byte limit")
        if 8 + header_len > file_bytes:
            raise InvalidModelFile(
                f"{shown}: header length {header_len} runs past the end of the file ({file_bytes} bytes; truncated?)"
            )
        text = f.read(header_len)
    parsed = json_object(text, f"{shown}: the SafeTensors header")
    metadata = parsed.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise InvalidModelFile(f"{shown}: __metadata__ must map strings to strings")
    data_bytes = file_bytes - 8 - header_len
    tensors = {name: _entry(name, raw, data_bytes, shown) for name, raw in parsed.items()}
    ranges = sorted((t.begin, t.end, name) for name, t in tensors.items() if t.end > t.begin)
    for (_, end_a, name_a), (begin_b, _, name_b) in zip(ranges, ranges[1:]):
        if begin_b < end_a:
            raise InvalidModelFile(f"{shown}: tensors {name_a[:80]!r} and {name_b[:80]!r} overlap in the data section")
    return SafetensorsHeader(tensors, dict(metadata), data_bytes)
