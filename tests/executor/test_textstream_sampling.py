"""The executor's text assembly (UTF-8 split across tokens, stop strings in pieces) and its sampler."""

from __future__ import annotations

import numpy as np

from mlos_executor.sampling import SamplingParams, sample
from mlos_executor.textstream import TextStream


def test_a_character_split_across_byte_tokens_waits_for_its_end():
    stream = TextStream()
    euro = "€".encode()
    assert stream.push(b"price " + euro[:1]) == "price "
    assert stream.push(euro[1:2]) == ""
    assert stream.push(euro[2:] + b"5") == "€5"


def test_a_stop_string_arriving_in_pieces_ends_the_text_before_it():
    stream = TextStream(("STOP",))
    assert stream.push(b"hello S") == "hello "
    assert stream.push(b"TO") == ""
    assert stream.push(b"P and more") == ""
    assert stream.stopped and stream.flush() == ""


def test_a_partial_stop_that_does_not_complete_is_released():
    stream = TextStream(("STOP",))
    assert stream.push(b"ST") == ""
    assert stream.push(b"ray") == "STray"


def test_flush_replaces_an_unfinished_character_unless_cancelled():
    assert (s := TextStream()).push("€".encode()[:2]) == "" and s.flush() == "\ufffd"
    assert (s := TextStream()).push("€".encode()[:2]) == "" and s.flush(complete_only=True) == ""


def test_greedy_is_argmax_and_sampling_respects_top_k_and_top_p():
    logits = np.array([0.0, 5.0, 4.9, -3.0, 1.0], dtype=np.float32)
    rng = np.random.default_rng(0)
    assert sample(logits, SamplingParams(temperature=0.0), rng) == 1
    drawn = {sample(logits, SamplingParams(temperature=1.0, top_k=2), rng) for _ in range(300)}
    assert drawn == {1, 2}
    # top_p 0.5: token 1 alone holds more than half of the mass
    assert {sample(logits, SamplingParams(temperature=1.0, top_p=0.5), rng) for _ in range(100)} == {1}
    wide = {sample(logits, SamplingParams(temperature=5.0), rng) for _ in range(2000)}
    assert wide == {0, 1, 2, 3, 4}


def test_the_same_seed_draws_the_same_tokens():
    logits = np.random.default_rng(1).standard_normal(500).astype(np.float32)
    params = SamplingParams(temperature=0.9, top_k=40, top_p=0.95)
    one = [sample(logits, params, rng) for rng in [np.random.default_rng(7)] for _ in range(50)]
    two = [sample(logits, params, rng) for rng in [np.random.default_rng(7)] for _ in range(50)]
    assert one == two
