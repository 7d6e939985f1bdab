"""Tensor codec for the Open Inference Protocol datatypes.

Tensors travel as row-major little-endian bytes and are wrapped with numpy.frombuffer, never
converted element by element. Every size is checked against the declared shape *before* any
buffer of that size is allocated, so a hostile shape like [2**62, 4] costs nothing.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlos_common.errors import InvalidArgument

MAX_TENSOR_ELEMENTS = 1 << 31  # no single tensor may claim more elements than this
BYTES_PREFIX = 4  # raw BYTES: each element is a 4-byte little-endian length, then its bytes


@dataclass(frozen=True, slots=True)
class DType:
    name: str                 # Open Inference Protocol name
    numpy: np.dtype | None    # None for BYTES and BF16
    itemsize: int             # 0 = variable (BYTES)
    contents_field: str       # InferTensorContents field holding typed values


_DTYPES = [
    DType("BOOL", np.dtype(np.bool_), 1, "bool_contents"),
    DType("UINT8", np.dtype("<u1"), 1, "uint_contents"),
    DType("UINT16", np.dtype("<u2"), 2, "uint_contents"),
    DType("UINT32", np.dtype("<u4"), 4, "uint_contents"),
    DType("UINT64", np.dtype("<u8"), 8, "uint64_contents"),
    DType("INT8", np.dtype("<i1"), 1, "int_contents"),
    DType("INT16", np.dtype("<i2"), 2, "int_contents"),
    DType("INT32", np.dtype("<i4"), 4, "int_contents"),
    DType("INT64", np.dtype("<i8"), 8, "int64_contents"),
    DType("FP16", np.dtype("<f2"), 2, ""),  # FP16 travels raw only
    DType("FP32", np.dtype("<f4"), 4, "fp32_contents"),
    DType("FP64", np.dtype("<f8"), 8, "fp64_contents"),
    DType("BF16", None, 2, ""),
    DType("BYTES", None, 0, "bytes_contents"),
]
DTYPES: dict[str, DType] = {d.name: d for d in _DTYPES}
_BY_NUMPY: dict[np.dtype, str] = {d.numpy: d.name for d in _DTYPES if d.numpy is not None}

# ONNX tensor element types (as onnxruntime reports them) -> protocol datatypes.
ONNX_TYPES: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(bfloat16)": "BF16",
    "tensor(string)": "BYTES",
}


def dtype(name: str) -> DType:
    try:
        return DTYPES[name]
    except KeyError:
        raise InvalidArgument(
            f"unknown datatype {name!r}; expected one of {', '.join(DTYPES)}"
        ) from None


def datatype_of(array: np.ndarray) -> str:
    if array.dtype.kind in ("O", "S", "U"):
        return "BYTES"
    try:
        return _BY_NUMPY[array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype]
    except KeyError:
        raise InvalidArgument(f"numpy dtype {array.dtype} has no protocol datatype") from None


def element_count(shape: Sequence[int], *, tensor: str = "tensor") -> int:
    """Number of elements a shape claims; rejects negative dims and absurd totals."""
    count = 1
    for dim in shape:
        if dim < 0:
            raise InvalidArgument(f"{tensor}: shape {list(shape)} has a negative dimension")
        count *= dim
    if count > MAX_TENSOR_ELEMENTS:
        raise InvalidArgument(
            f"{tensor}: shape {list(shape)} claims {count} elements, over the limit of "
            f"{MAX_TENSOR_ELEMENTS}"
        )
    return count


def check_raw_size(name: str, datatype: str, shape: Sequence[int], nbytes: int) -> int:
    """Validates that a raw buffer of `nbytes` matches the shape; returns the element count."""
    dt = dtype(datatype)
    count = element_count(shape, tensor=f"input {name!r}")
    if dt.itemsize and count * dt.itemsize != nbytes:
        raise InvalidArgument(
            f"input {name!r}: shape {list(shape)} of {datatype} needs {count * dt.itemsize} bytes, "
            f"got {nbytes}"
        )
    if dt.name == "BYTES" and count * BYTES_PREFIX > nbytes:
        raise InvalidArgument(
            f"input {name!r}: shape {list(shape)} of BYTES needs at least {count * BYTES_PREFIX} bytes "
            f"({BYTES_PREFIX}-byte length prefix per element), got {nbytes}"
        )
    return count


def array_from_raw(name: str, datatype: str, shape: Sequence[int], buf: bytes | memoryview) -> np.ndarray:
    """Wraps raw bytes as an array without copying (BYTES: object array of bytes)."""
    dt = dtype(datatype)
    count = check_raw_size(name, datatype, shape, len(buf))
    if dt.name == "BYTES":
        return decode_bytes(name, buf, count).reshape(tuple(shape))
    if dt.numpy is None:
        raise InvalidArgument(f"input {name!r}: datatype {datatype} is not supported by this runtime")
    return np.frombuffer(buf, dtype=dt.numpy, count=count).reshape(tuple(shape))


def array_from_values(name: str, datatype: str, shape: Sequence[int], values: Sequence) -> np.ndarray:
    """Builds an array from typed protobuf contents (a repeated field), in C, not a Python loop."""
    dt = dtype(datatype)
    count = element_count(shape, tensor=f"input {name!r}")
    if len(values) != count:
        raise InvalidArgument(
            f"input {name!r}: shape {list(shape)} needs {count} values, got {len(values)}"
        )
    if dt.name == "BYTES":
        out = np.empty(count, dtype=object)
        out[:] = list(values)
        return out.reshape(tuple(shape))
    if dt.numpy is None:
        raise InvalidArgument(f"input {name!r}: {datatype} must be sent in raw_input_contents")
    try:
        array = np.fromiter(values, dtype=dt.numpy, count=count)
    except (OverflowError, ValueError) as exc:  # e.g. 300 in uint_contents of a UINT8 input
        raise InvalidArgument(f"input {name!r}: a value does not fit {datatype}: {exc}") from None
    return array.reshape(tuple(shape))


def decode_bytes(name: str, buf: bytes | memoryview, count: int) -> np.ndarray:
    """Triton raw BYTES layout: each element is a 4-byte little-endian length, then the bytes.

    The buffer must hold at least the length prefixes of `count` elements before anything of
    `count` elements is allocated, so a shape claiming 2**31 strings in a 4-byte body costs nothing.
    """
    if count * BYTES_PREFIX > len(buf):
        raise InvalidArgument(
            f"input {name!r}: BYTES needs at least {count * BYTES_PREFIX} bytes for {count} elements, got {len(buf)}"
        )
    out = np.empty(count, dtype=object)
    view = memoryview(buf)
    pos = 0
    for i in range(count):
        if pos + 4 > len(view):
            raise InvalidArgument(f"input {name!r}: BYTES buffer ends inside element {i}")
        (length,) = struct.unpack_from("<I", view, pos)
        pos += 4
        if pos + length > len(view):
            raise InvalidArgument(
                f"input {name!r}: BYTES element {i} claims {length} bytes, only {len(view) - pos} left"
            )
        out[i] = bytes(view[pos : pos + length])
        pos += length
    if pos != len(view):
        raise InvalidArgument(f"input {name!r}: {len(view) - pos} trailing bytes after {count} elements")
    return out


def check_bytes_layout(name: str, buf: bytes | memoryview, count: int) -> None:
    """Walks the length prefixes of a raw BYTES buffer of `count` elements without copying any
    element; raises InvalidArgument as decode_bytes would. Used at admission, so a malformed
    request fails alone instead of failing the batch it would have joined."""
    view = memoryview(buf)
    size = len(view)
    pos = 0
    unpack = struct.unpack_from
    for i in range(count):
        if pos + 4 > size:
            raise InvalidArgument(f"input {name!r}: BYTES buffer ends inside element {i}")
        pos += 4 + unpack("<I", view, pos)[0]
        if pos > size:
            raise InvalidArgument(f"input {name!r}: BYTES element {i} runs past the end of the buffer")
    if pos != size:
        raise InvalidArgument(f"input {name!r}: {size - pos} trailing bytes after {count} elements")


def encode_bytes(array: np.ndarray) -> bytes:
    """The raw BYTES layout of an array of bytes or str (str as UTF-8)."""
    parts = []
    for item in array.reshape(-1):
        data = item.encode() if isinstance(item, str) else bytes(item)
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)


def array_to_raw(array: np.ndarray) -> bytes:
    """Row-major little-endian bytes of an array (BYTES arrays in the length-prefixed layout)."""
    if array.dtype.kind in ("O", "S", "U"):
        return encode_bytes(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array).tobytes()
