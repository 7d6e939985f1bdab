"""Choosing the next token from a generation's logits, with a generator of its own.

Each generation samples with its own numpy Generator seeded from its request (or at random), so its
tokens do not depend on what else ran on the model meanwhile: a generation that was preempted and
resumed produces the same text as one that ran alone. temperature 0 is greedy (argmax); otherwise
top-k, then top-p (nucleus) over the softmax at that temperature, as llama.cpp's samplers do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0


def sample(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> int:
    """The next token id; `logits` is one float32 row of the vocabulary."""
    if params.temperature <= 0.0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / params.temperature
    if 0 < params.top_k < scaled.shape[0]:
        candidates = np.argpartition(scaled, -params.top_k)[-params.top_k:]
    else:
        candidates = np.arange(scaled.shape[0])
    values = scaled[candidates]
    order = np.argsort(values)[::-1]
    candidates, values = candidates[order], values[order]
    probs = np.exp(values - values[0])
    probs /= probs.sum()
    if 0.0 < params.top_p < 1.0:
        keep = int(np.searchsorted(np.cumsum(probs), params.top_p)) + 1
        candidates, probs = candidates[:keep], probs[:keep] / probs[:keep].sum()
    return int(candidates[rng.choice(candidates.shape[0], p=probs)])
