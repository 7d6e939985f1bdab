"""An executor's answer -> per-request results, with the statistics each answered batch feeds."""

from __future__ import annotations

import time
from collections.abc import Callable

from mlos_common.errors import MlosError
from mlos_scheduler.domain import InferRequest, InferResult, ModelInfo
from mlos_scheduler.executors import Executed
from mlos_scheduler.merging import split_outputs
from mlos_scheduler.stats import StatsBook

ComputeObserver = Callable[[ModelInfo, int, float], None]  # (model, batch rows, compute seconds)


def batch_results(stats: StatsBook, model: ModelInfo, requests: list[InferRequest], answer: Executed, input_ns: int,
                  on_compute: ComputeObserver | None = None) -> list[InferResult | MlosError]:
    """A merged batch's answer split back per request (one error for all when it failed)."""
    if isinstance(answer, MlosError):
        return [answer] * len(requests)
    outputs, compute_ns = answer
    split_start = time.perf_counter_ns()
    results: list[InferResult | MlosError] = [
        InferResult(model.name, model.version, r.id, outs)
        for r, outs in zip(requests, split_outputs(outputs, requests), strict=True)
    ]
    rows = sum(r.rows for r in requests)
    stats.executed(model.name, model.version, rows, len(requests), input_ns, compute_ns, time.perf_counter_ns() - split_start)
    if on_compute is not None and compute_ns > 0:
        on_compute(model, rows, compute_ns / 1e9)
    return results


def lone_result(stats: StatsBook, model: ModelInfo, request: InferRequest, answer: Executed, input_ns: int,
                on_compute: ComputeObserver | None = None) -> InferResult | MlosError:
    """One request run on its own (a model without a batch dimension)."""
    if isinstance(answer, MlosError):
        return answer
    outputs, compute_ns = answer
    stats.executed(model.name, model.version, request.rows, 1, input_ns, compute_ns, 0)
    if on_compute is not None and compute_ns > 0:
        on_compute(model, request.rows, compute_ns / 1e9)
    return InferResult(model.name, model.version, request.id, outputs)
