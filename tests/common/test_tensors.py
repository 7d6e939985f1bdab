"""mlos_common.tensors: the raw little-endian codec, BYTES layout and size checks."""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest

from mlos_common.errors import InvalidArgument
from mlos_common.tensors import (
    MAX_TENSOR_ELEMENTS,
    array_from_raw,
    array_from_values,
    array_to_raw,
    check_raw_size,
    datatype_of,
    decode_bytes,
    element_count,
    encode_bytes,
)

NUMERIC = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


def _sample(np_type) -> np.ndarray:
    rng = np.random.default_rng(7)
    if np_type is np.bool_:
        return rng.integers(0, 2, size=(2, 3, 4)).astype(np.bool_)
    if np.issubdtype(np_type, np.integer):
        info = np.iinfo(np_type)
        return rng.integers(info.min, info.max, size=(2, 3, 4), dtype=np_type, endpoint=True)
    return rng.standard_normal((2, 3, 4)).astype(np_type)


@pytest.mark.parametrize("datatype", sorted(NUMERIC))
def test_numeric_round_trip(datatype: str) -> None:
    array = _sample(NUMERIC[datatype])
    assert datatype_of(array) == datatype
    raw = array_to_raw(array)
    assert len(raw) == array.size * array.itemsize
    back = array_from_raw("x", datatype, list(array.shape), raw)
    assert back.dtype == array.dtype
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("datatype", sorted(NUMERIC))
def test_array_from_raw_is_zero_copy(datatype: str) -> None:
    raw = array_to_raw(_sample(NUMERIC[datatype]))
    source = np.frombuffer(raw, dtype=np.uint8)
    back = array_from_raw("x", datatype, [2, 3, 4], raw)
    assert np.shares_memory(back, source), f"{datatype}: array_from_raw copied the buffer"


def test_raw_layout_is_row_major_little_endian() -> None:
    array = np.array([[1, 2], [3, 258]], dtype=np.int32)
    assert array_to_raw(array) == struct.pack("<4i", 1, 2, 3, 258)
    # A non-contiguous view (transpose) still encodes in row-major order of the view.
    assert array_to_raw(array.T) == struct.pack("<4i", 1, 3, 2, 258)


@pytest.mark.parametrize("np_type", [np.int32, np.uint16, np.float64, np.int64])
def test_big_endian_input_encodes_little_endian(np_type) -> None:
    little = np.arange(6, dtype=np_type).reshape(2, 3) * 3 + 1
    big = little.astype(np.dtype(np_type).newbyteorder(">"))
    assert big.dtype.byteorder == ">"
    assert array_to_raw(big) == little.astype(np.dtype(np_type).newbyteorder("<")).tobytes()
    assert datatype_of(big) == datatype_of(little)


def test_fp16_raw_ok() -> None:
    array = np.array([0.5, -2.0, 65504.0], dtype=np.float16)
    raw = array_to_raw(array)
    assert raw == struct.pack("<3e", 0.5, -2.0, 65504.0)
    np.testing.assert_array_equal(array_from_raw("h", "FP16", [3], raw), array)


def test_bf16_raw_rejected() -> None:
    with pytest.raises(InvalidArgument, match="BF16"):
        array_from_raw("b", "BF16", [2], b"\x00\x00\x80\x3f")


def test_bf16_values_rejected() -> None:
    with pytest.raises(InvalidArgument, match="raw_input_contents"):
        array_from_values("b", "BF16", [1], [1.0])


# ---- BYTES ----


def test_bytes_round_trip_including_empty() -> None:
    items = [b"", b"abc", "h\u00e9".encode(), b"", b"\x00\xff" * 300]
    array = np.array(items, dtype=object).reshape(5, 1)
    raw = array_to_raw(array)
    expected = b"".join(struct.pack("<I", len(i)) + i for i in items)
    assert raw == expected
    back = array_from_raw("s", "BYTES", [5, 1], raw)
    assert back.shape == (5, 1)
    assert back.dtype == object
    assert list(back.reshape(-1)) == items


def test_bytes_encode_str_as_utf8() -> None:
    assert encode_bytes(np.array(["h\u00e9", ""], dtype=object)) == b"\x03\x00\x00\x00h\xc3\xa9\x00\x00\x00\x00"
    assert datatype_of(np.array(["a"], dtype=object)) == "BYTES"


def test_bytes_all_empty() -> None:
    raw = encode_bytes(np.array([b"", b""], dtype=object))
    assert raw == b"\x00" * 8
    assert list(decode_bytes("s", raw, 2)) == [b"", b""]


@pytest.mark.parametrize(
    ("raw", "count", "message"),
    [
        (b"\x05\x00\x00\x00abc", 1, "element 0 claims 5 bytes, only 3 left"),
        (b"\x03\x00\x00\x00abc\x02", 2, "ends inside element 1"),
        (b"\x01\x00\x00\x00a\x02\x00", 2, "needs at least 8 bytes"),
        (b"", 1, "needs at least 4 bytes"),
        (b"\x01\x00\x00\x00ab", 1, "1 trailing bytes after 1 elements"),
    ],
    ids=["length-past-end", "truncated-prefix", "short-for-count", "empty-buffer", "trailing"],
)
def test_bytes_malformed(raw: bytes, count: int, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        array_from_raw("text", "BYTES", [count], raw)
    assert "'text'" in info.value.message
    assert message in info.value.message


def test_bytes_huge_length_prefix_does_not_allocate() -> None:
    raw = struct.pack("<I", 0xFFFFFFFF) + b"x"
    tracemalloc.start()
    try:
        with pytest.raises(InvalidArgument, match="claims 4294967295 bytes"):
            array_from_raw("text", "BYTES", [1], raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("decode", [
    lambda: array_from_raw("text", "BYTES", [2**31], b"\x00" * 4),
    lambda: decode_bytes("text", b"\x00" * 4, 2**31),
    lambda: check_raw_size("text", "BYTES", [2**30, 2], 4),
])
def test_bytes_huge_shape_with_tiny_body_is_refused_before_allocating(decode) -> None:
    def run() -> None:
        with pytest.raises(InvalidArgument, match="'text'.*at least 8589934592 bytes"):
            decode()

    assert _peak_bytes(run) < 1_000_000


@pytest.mark.parametrize("datatype,field,value", [
    ("UINT8", "uint_contents", 300), ("INT8", "int_contents", -200), ("UINT16", "uint_contents", 70000),
    ("INT16", "int_contents", 40000),
])
def test_typed_value_out_of_range_names_input(datatype: str, field: str, value: int) -> None:
    with pytest.raises(InvalidArgument, match=f"'IN'.*{datatype}"):
        array_from_values("IN", datatype, [2], [1, value])


# ---- size checks ----


def test_wrong_raw_size_names_input_and_sizes() -> None:
    with pytest.raises(InvalidArgument) as info:
        array_from_raw("INPUT0", "FP32", [2, 3], b"\x00" * 20)
    msg = info.value.message
    assert "'INPUT0'" in msg
    assert "needs 24 bytes" in msg
    assert "got 20" in msg
    assert info.value.code == "INVALID_ARGUMENT"


def test_check_raw_size_returns_count() -> None:
    assert check_raw_size("x", "INT16", [3, 0, 5], 0) == 0
    assert check_raw_size("x", "INT16", [3, 5], 30) == 15
    assert check_raw_size("x", "INT16", [], 2) == 1  # a scalar


def test_negative_dim_rejected() -> None:
    with pytest.raises(InvalidArgument, match="negative dimension"):
        array_from_raw("x", "FP32", [-1, 4], b"\x00" * 16)
    with pytest.raises(InvalidArgument, match="negative dimension"):
        # -1 * -4 would be a plausible positive count if negatives were multiplied through.
        check_raw_size("x", "FP32", [-1, -4], 16)
    with pytest.raises(InvalidArgument, match="negative dimension"):
        array_from_values("x", "INT64", [-2], [1, 2])


@pytest.mark.parametrize("shape", [[2**62, 4], [2**31, 2], [1 << 40], [2**31 + 1]])
@pytest.mark.parametrize("datatype", ["FP32", "BYTES", "UINT8"])
def test_huge_shape_rejected_before_allocation(shape: list[int], datatype: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(InvalidArgument, match="over the limit"):
            check_raw_size("big", datatype, shape, 16)
        with pytest.raises(InvalidArgument, match="over the limit"):
            array_from_raw("big", datatype, shape, b"\x00" * 16)
        with pytest.raises(InvalidArgument, match="over the limit"):
            array_from_values("big", datatype, shape, [0] * 4)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"peak allocation {peak} bytes while rejecting {shape}"


def test_zero_dim_makes_empty_tensor_even_with_huge_other_dims() -> None:
    # 0 * huge = 0 elements: legitimately empty, and must not be refused as too large.
    assert element_count([0, 2**62]) == 0
    out = array_from_raw("e", "FP32", [0, 2**40], b"")
    assert out.shape == (0, 2**40) and out.size == 0


def test_element_limit_boundary() -> None:
    assert element_count([MAX_TENSOR_ELEMENTS]) == MAX_TENSOR_ELEMENTS
    with pytest.raises(InvalidArgument):
        element_count([MAX_TENSOR_ELEMENTS + 1])


def test_unknown_datatype() -> None:
    for call in (
        lambda: array_from_raw("x", "FLOAT32", [1], b"\x00" * 4),
        lambda: check_raw_size("x", "fp32", [1], 4),
        lambda: array_from_values("x", "COMPLEX64", [1], [1.0]),
    ):
        with pytest.raises(InvalidArgument, match="unknown datatype") as info:
            call()
        assert "FP32" in info.value.message  # lists what is accepted


def test_datatype_of_unsupported_numpy_dtype() -> None:
    with pytest.raises(InvalidArgument, match="complex64"):
        datatype_of(np.zeros(1, dtype=np.complex64))


# ---- typed contents (array_from_values) ----


def test_values_fp32() -> None:
    out = array_from_values("f", "FP32", [2, 2], [1.5, -2.0, 3.25, 0.0])
    assert out.dtype == np.float32 and out.shape == (2, 2)
    np.testing.assert_array_equal(out, np.array([[1.5, -2.0], [3.25, 0.0]], dtype=np.float32))


def test_values_int64_keeps_full_range() -> None:
    vals = [2**63 - 1, -(2**63), 0]
    out = array_from_values("i", "INT64", [3], vals)
    assert out.dtype == np.int64
    assert out.tolist() == vals


def test_values_bool() -> None:
    out = array_from_values("b", "BOOL", [1, 3], [True, False, True])
    assert out.dtype == np.bool_
    assert out.tolist() == [[True, False, True]]


def test_values_bytes() -> None:
    out = array_from_values("s", "BYTES", [2], [b"", b"xy"])
    assert out.dtype == object
    assert list(out) == [b"", b"xy"]


@pytest.mark.parametrize("datatype", ["FP32", "INT64", "BOOL", "BYTES"])
def test_values_count_mismatch(datatype: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        array_from_values("IN", datatype, [2, 2], [0, 0, 0])
    assert "'IN'" in info.value.message
    assert "needs 4 values, got 3" in info.value.message
