"""Warm-up at load: timed runs of a freshly loaded model on zero-filled inputs.

The timings are the scheduler's first execution-time figures (before any telemetry) and the
runs take the first-run costs (lazy allocations, kernel selection) off real requests. A batched
model runs at batch 1 and at its max batch size; a model without a batch dimension runs once per
round at its declared shape. Variable dimensions other than the batch are 1. A model whose
inputs cannot be synthesised (BYTES, BF16) is skipped, and so is one whose run fails on zeros:
`warm_up` then returns no timings and the reason. The first run at each batch size is untimed;
the timed runs stop early once `max_s` has been spent on the model in all. Runs here are not
executions: nothing is reported to telemetry or counted. Call from a worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mlos_common.signatures import TensorSpec
from mlos_common.tensors import DTYPES
from mlos_executor.onnx_backend import OnnxModel


@dataclass(frozen=True, slots=True)
class WarmupTiming:
    batch_size: int
    runs: int
    mean_ms: float
    max_ms: float


def synthetic_feeds(inputs: Sequence[TensorSpec], batch_size: int | None) -> dict[str, np.ndarray] | str:
    """Zero-filled inputs (first dimension = batch_size unless None), or why there can be none."""
    feeds = {}
    for spec in inputs:
        dtype = DTYPES[spec.datatype].numpy
        if dtype is None:
            return f"input {spec.name!r} is {spec.datatype}, which cannot be synthesised"
        shape = [d if d >= 0 else 1 for d in spec.shape]
        if batch_size is not None and shape:
            shape[0] = batch_size
        feeds[spec.name] = np.zeros(shape, dtype=dtype)
    return feeds


def largest_batch(runs: int, max_batch_size: int | None, plan: Sequence[int] = ()) -> int:
    """The largest batch a load's warm-up runs (see ExecutorCore.load): the plan's largest, else
    its max batch size when the serving config gives one (> 0), else 1 (also with warm-up off)."""
    if runs <= 0:
        return 1
    return max(plan) if plan else max(1, max_batch_size or 1)


def batch_sizes(batched: bool, max_batch_size: int, plan: Sequence[int] = ()) -> Sequence[int | None]:
    """The batch sizes to time: the model's warm-up plan when it has one (registry serving config
    warmup_batch_sizes), else 1 and max_batch_size; None = the model's own shape (no batch dimension)."""
    if not batched:
        return [None]
    return sorted(set(plan)) if plan else sorted({1, max(1, max_batch_size)})


def warm_up(
    model: OnnxModel, batched: bool, max_batch_size: int, runs: int, max_s: float,
    after_size: Callable[[int], None] | None = None, plan: Sequence[int] = (),
) -> tuple[list[WarmupTiming], str]:
    """(timings, "") or ([...what was timed], why the rest was skipped). `after_size(batch_size)`
    is called after each batch size's runs (the memory measurement's marks)."""
    if runs <= 0:
        return [], "warm-up is off"
    outputs = [o.name for o in model.outputs]
    started = time.perf_counter()
    timings: list[WarmupTiming] = []
    for size in batch_sizes(batched, max_batch_size, plan):
        feeds = synthetic_feeds(model.inputs, size)
        if isinstance(feeds, str):
            return timings, feeds
        try:
            model.run(feeds, outputs)  # untimed: first-run costs
            took: list[float] = []
            while len(took) < runs and (not took or time.perf_counter() - started < max_s):
                t0 = time.perf_counter()
                model.run(feeds, outputs)
                took.append(time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - a model that cannot run on zeros is only not warmed
            return timings, f"a run at batch {size or 1} on zeros failed: {getattr(exc, 'message', exc)}"
        timings.append(WarmupTiming(size or 1, len(took), 1000 * sum(took) / len(took), 1000 * max(took)))
        if after_size is not None:
            after_size(size or 1)
        if time.perf_counter() - started >= max_s:
            break
    return timings, ""
