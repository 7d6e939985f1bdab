"""The front door's per-model and per-client windows (client_stats.py): bounded value samples,
LRU-bounded clients, windows that never mix."""

from __future__ import annotations

import numpy as np
import pytest

from mlos_common.tensors import array_to_raw
from mlos_scheduler.client_stats import SAMPLE_ELEMENTS, ClientBook, RateBook, sample_values
from mlos_scheduler.domain import Tensor


def tensor(array: np.ndarray, datatype: str = "FP32", name: str = "x") -> Tensor:
    return Tensor(name, datatype, tuple(array.shape), array_to_raw(array))


def test_small_tensor_is_sampled_whole() -> None:
    x = np.array([[1.0, -7.5], [3.0, 2.0]], dtype=np.float32)
    assert sample_values([tensor(x)]) == (7.5, 4, 0)


def test_large_tensor_sample_is_bounded_and_strided() -> None:
    x = np.arange(1_000_000, dtype=np.float32)  # largest |value| at the end: a stride reaches near it
    absmax, sampled, nonfinite = sample_values([tensor(x)])
    assert sampled == SAMPLE_ELEMENTS and nonfinite == 0
    assert absmax >= 0.99 * 1_000_000 - 4000  # strided over the whole tensor, not its head
    head_only = sample_values([tensor(x)], budget=16)
    assert head_only[1] == 16


def test_nonfinite_values_are_counted_and_left_out_of_absmax() -> None:
    x = np.array([np.nan, np.inf, -np.inf, 2.0, -3.0], dtype=np.float64)
    assert sample_values([tensor(x, "FP64")]) == (3.0, 5, 3)
    all_nan = np.full(8, np.nan, dtype=np.float32)
    assert sample_values([tensor(all_nan)]) == (0.0, 8, 8)


def test_integers_half_floats_and_budget_across_inputs() -> None:
    ints = np.array([5, -2**31, 7], dtype=np.int32)
    assert sample_values([tensor(ints, "INT32")]) == (2.0**31, 3, 0)
    half = np.array([1.5, np.inf], dtype=np.float16)
    assert sample_values([tensor(half, "FP16")]) == (1.5, 2, 1)
    a, b = np.ones(200, dtype=np.float32), np.full(200, 9.0, dtype=np.float32)
    absmax, sampled, _ = sample_values([tensor(a, name="a"), tensor(b, name="b")])
    assert sampled == SAMPLE_ELEMENTS and absmax == 9.0  # the second input gets what is left


def test_unsampled_datatypes_and_ragged_bytes() -> None:
    strings = Tensor("s", "BYTES", (1,), b"\x03\x00\x00\x00abc")
    flags = tensor(np.array([True, False]), "BOOL")
    bf16 = Tensor("h", "BF16", (2,), b"\x00\x01\x02\x03")
    assert sample_values([strings, flags, bf16]) == (0.0, 0, 0)
    ragged = Tensor("x", "FP32", (2,), array_to_raw(np.array([4.0], dtype=np.float32)) + b"\x01\x02")
    assert sample_values([ragged]) == (4.0, 1, 0)  # whole elements only: no error on a bad length
    assert sample_values([Tensor("x", "FP32", (0,), b"")]) == (0.0, 0, 0)


def test_client_windows_aggregate_and_reset() -> None:
    book = ClientBook()
    a = book.record("alice")
    a.payload(100)
    a.values([tensor(np.array([np.nan, 2.0], dtype=np.float32))])
    again = book.record("alice")
    again.payload(300)
    again.malformed += 1
    book.record("bob").payload(10)
    windows = {w.client: w for w in book.drain()}
    alice = windows["alice"]
    assert (alice.requests, alice.malformed, alice.bytes_mean, alice.bytes_max) == (2, 1, 200.0, 300)
    assert (alice.value_absmax, alice.values_sampled, alice.nonfinite) == (2.0, 2, 1)
    assert windows["bob"].requests == 1 and len(book) == 0
    assert book.drain() == []  # a quiet window sends nothing


def test_late_news_of_a_drained_window_does_not_leak_into_the_next() -> None:
    book = ClientBook()
    counts = book.record("alice")
    book.drain()
    counts.malformed += 1  # the request failed after its window closed
    book.record("alice")
    [window] = book.drain()
    assert (window.requests, window.malformed) == (1, 0)


def test_client_flood_is_bounded_least_recently_seen_first() -> None:
    book = ClientBook(max_clients=3)
    for client in ("a", "b", "c"):
        book.record(client)
    book.record("a")  # a is now the most recent
    for i in range(1000):
        book.record(f"flood-{i}")
    assert len(book) == 3 and book.evicted == 1000
    assert {w.client for w in book.drain()} == {"flood-997", "flood-998", "flood-999"}
    with pytest.raises(ValueError, match="max_clients"):
        ClientBook(max_clients=0)


def test_rates_count_served_models_only_and_report_quiet_ones() -> None:
    served = {"iris": 1, "ocr": 2}
    rates = RateBook(served)
    for name in ("iris", "iris", "nope", "nope-2"):
        rates.count(name)
    assert rates.drain() == [("iris", 2), ("ocr", 0)]
    del served["iris"]
    rates.count("iris")
    assert rates.drain() == [("ocr", 0)]
