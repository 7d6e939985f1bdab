"""A bounded reader of GGUF headers: metadata key/values and the tensor info table, never tensor data.

Written for files we do not trust (gguf 0.19's GGUFReader loops for ever, growing memory, on a
51-byte file that declares an array of 2^63 bytes). Every count and length is checked against a hard
bound and against the bytes left in the file *before* anything of that size is read or walked; the
walk itself is bounded by a byte budget and a step budget (one step per key/value, string of an
array, nested array and tensor), so a hostile file costs at most a few million cheap steps. Arrays of
fixed-size items are skipped in O(1) (their first few items are kept); arrays of strings are walked
in memory, keeping a sample.

Layout (little-endian; versions 2 and 3): b"GGUF", u32 version, u64 tensor_count, u64 kv_count,
kv_count x (string key, u32 type, value), tensor_count x (string name, u32 n_dims, u64 dims[n_dims],
u32 ggml type, u64 offset), padding to `general.alignment`, tensor data. A string is u64 length +
UTF-8 bytes; an array is u32 item type + u64 count + items.

Every malformed input raises InvalidModelFile naming what is wrong and the byte offset.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from mlos_registry import gguf_types as types
from mlos_registry.gguf_cursor import MAX_STRING_BYTES, SAMPLE_ITEMS, Cursor

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
MAX_TENSORS = 1_000_000
MAX_KVS = 100_000
MAX_ARRAY_ITEMS = 1 << 26  # 67M; a vocabulary holds ~10^5-10^6
MAX_ARRAY_NESTING = 2  # an array of arrays is allowed; an array of arrays of arrays is not
MAX_DIMS = 4  # GGML_MAX_DIMS
DEFAULT_READ_BUDGET_BYTES = 512 * 1024 * 1024
DEFAULT_STEP_BUDGET = 8_000_000
_MAX_ELEMENTS = (1 << 63) - 1

Scalar = int | float | bool | str


@dataclass(frozen=True, slots=True)
class GGUFArray:
    """An array value: its item type name ("UINT32", "STRING", "ARRAY", ...), length and first items."""

    item_type: str
    length: int
    head: tuple[Scalar, ...]


Value = Scalar | GGUFArray


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int  # from the start of the data section

    @property
    def elements(self) -> int:
        count = 1
        for dim in self.dims:
            count *= dim
        return count


@dataclass(frozen=True, slots=True)
class GGUFHeader:
    version: int
    tensor_count: int
    metadata: dict[str, Value]
    tensor_info_offset: int  # byte offset where the tensor info table starts
    tensors: tuple[TensorInfo, ...]
    data_offset: int  # byte offset of the (aligned) tensor data section


def _value(cur: Cursor, vtype: int, what: str) -> Scalar:
    """One scalar of type `vtype` (not ARRAY)."""
    if vtype == types.STRING:
        return cur.string(what, MAX_STRING_BYTES, strict=False)
    fmt = types.SCALAR_FORMATS[vtype]
    (value,) = struct.unpack_from("<" + fmt, cur.take(struct.calcsize(fmt), what))
    return bool(value) if vtype == types.BOOL else value


def _value_type(cur: Cursor, what: str) -> int:
    at = cur.pos
    vtype = cur.u32(f"the value type of {what}")
    if vtype not in types.VALUE_TYPE_NAMES:
        raise cur.fail(f"{what} has unknown value type {vtype} (known: 0-12)", at)
    return vtype


def _array(cur: Cursor, what: str, depth: int) -> GGUFArray:
    if depth > MAX_ARRAY_NESTING:
        raise cur.fail(f"{what} nests arrays more than {MAX_ARRAY_NESTING} deep")
    item_type = _value_type(cur, f"the items of {what}")
    at = cur.pos
    count = cur.u64(f"the length of {what}")
    min_item = types.min_item_bytes(item_type)
    if count > MAX_ARRAY_ITEMS or count * min_item > cur.left:
        raise cur.fail(
            f"{what} claims {count} items of type {types.VALUE_TYPE_NAMES[item_type]} "
            f"(at least {count * min_item} bytes) but {cur.left} bytes remain and at most {MAX_ARRAY_ITEMS} items "
            "are allowed",
            at,
        )
    head: tuple[Scalar, ...]
    if item_type == types.STRING:
        head = cur.skip_strings(count, what)
    elif item_type == types.ARRAY:
        cur.step(count)
        for _ in range(count):
            _array(cur, f"an item of {what}", depth + 1)
        head = ()
    else:
        kept = min(count, SAMPLE_ITEMS)
        head = tuple(_value(cur, item_type, what) for _ in range(kept))
        cur.skip((count - kept) * min_item, what)  # fixed-size items: nothing to look at
    return GGUFArray(types.VALUE_TYPE_NAMES[item_type], count, head)


def _metadata(cur: Cursor, kv_count: int) -> dict[str, Value]:
    metadata: dict[str, Value] = {}
    for index in range(kv_count):
        key = cur.entry_name(f"the key of metadata entry {index}", "metadata key", metadata)
        what = f"metadata {key!r}"
        vtype = _value_type(cur, what)
        metadata[key] = _array(cur, what, 1) if vtype == types.ARRAY else _value(cur, vtype, what)
    return metadata


def _tensor_infos(cur: Cursor, count: int) -> tuple[TensorInfo, ...]:
    tensors: list[TensorInfo] = []
    names: set[str] = set()
    for index in range(count):
        at = cur.pos
        name = cur.entry_name(f"the name of tensor {index}", "tensor name", names)
        names.add(name)
        what = f"tensor {name!r}"
        n_dims = cur.u32(f"the number of dimensions of {what}")
        if n_dims > MAX_DIMS:
            raise cur.fail(f"{what} has {n_dims} dimensions; GGML allows at most {MAX_DIMS}", cur.pos - 4)
        dims = tuple(cur.u64(f"a dimension of {what}") for _ in range(n_dims))
        info = TensorInfo(name, dims, cur.u32(f"the type of {what}"), cur.u64(f"the data offset of {what}"))
        if info.elements > _MAX_ELEMENTS:
            raise cur.fail(f"{what} has dimensions {list(dims)}, more than 2^63-1 elements", at)
        if info.ggml_type not in types.GGML_TYPES:
            raise cur.fail(f"{what} has unknown ggml type {info.ggml_type}", cur.pos - 12)
        tensors.append(info)
    return tuple(tensors)


def _check_tensor_data(cur: Cursor, tensors: tuple[TensorInfo, ...], alignment: int) -> int:
    """Checks every tensor's bytes lie inside the file, aligned; returns the data section's offset."""
    data_offset = -(-cur.pos // alignment) * alignment
    data_bytes = cur.size - data_offset
    for info in tensors:
        name, block, type_size = types.GGML_TYPES[info.ggml_type]
        if info.dims and info.dims[0] % block:
            raise cur.fail(f"tensor {info.name!r} ({name}) has a first dimension {info.dims[0]} that is not a "
                           f"multiple of its block size {block}", cur.pos)
        nbytes = info.elements // block * type_size
        if info.offset % alignment or info.offset + nbytes > data_bytes:
            raise cur.fail(
                f"tensor {info.name!r} claims {nbytes} bytes at data offset {info.offset}, which is not "
                f"{alignment}-aligned or runs past the end of the file ({max(data_bytes, 0)} data bytes; truncated?)",
                data_offset,
            )
    return data_offset


def _alignment(cur: Cursor, metadata: dict[str, Value]) -> int:
    alignment = metadata.get("general.alignment", 32)
    if isinstance(alignment, bool) or not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise cur.fail(f"general.alignment must be a power of two, got {alignment!r}")
    return alignment


def _check_count(cur: Cursor, what: str, count: int, limit: int, min_bytes: int, at: int) -> None:
    if count > limit:
        raise cur.fail(f"the {what} {count} is over the limit of {limit}", at)
    if count * min_bytes > cur.left:
        raise cur.fail(f"the {what} {count} needs at least {count * min_bytes} bytes but only {cur.left} remain", at)


def read_header(
    f: BinaryIO,
    shown_as: str = "the file",
    *,
    read_budget_bytes: int = DEFAULT_READ_BUDGET_BYTES,
    step_budget: int = DEFAULT_STEP_BUDGET,
) -> GGUFHeader:
    """Parses the GGUF header of the seekable binary file `f` (from offset 0) within the bounds above.

    Raises InvalidModelFile (INVALID_ARGUMENT) for anything malformed, naming the byte offset.
    """
    size = f.seek(0, 2)
    cur = Cursor(f, size, shown_as, read_budget_bytes, step_budget)
    if bytes(cur.take(4, "the magic number")) != MAGIC:
        raise cur.fail("the magic number is not b'GGUF'", 0)
    version = cur.u32("the version")
    if version not in SUPPORTED_VERSIONS:
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        hint = " (a big-endian file, which is not supported)" if swapped in SUPPORTED_VERSIONS else ""
        raise cur.fail(f"GGUF version {version}{hint} is not supported, only versions 2 and 3", 4)
    tensor_count = cur.u64("the tensor count")
    kv_count = cur.u64("the metadata count")
    _check_count(cur, "tensor count", tensor_count, MAX_TENSORS, types.MIN_TENSOR_INFO_BYTES, 8)
    _check_count(cur, "metadata count", kv_count, MAX_KVS, types.MIN_KV_BYTES, 16)
    metadata = _metadata(cur, kv_count)
    tensor_info_offset = cur.pos
    tensors = _tensor_infos(cur, tensor_count)
    data_offset = _check_tensor_data(cur, tensors, _alignment(cur, metadata))
    return GGUFHeader(version, tensor_count, metadata, tensor_info_offset, tensors, data_offset)
