"""One piece of tensor work and its outcome, and running a group of them on a session (in a worker
thread or inline). No grpc here."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mlos_common.errors import DeadlineExceeded, Internal, MlosError
from mlos_common.signatures import TensorSpec
from mlos_executor.onnx_backend import runtime_message

if TYPE_CHECKING:
    from mlos_executor.core import Runnable


@dataclass(frozen=True, slots=True)
class ExecutionSample:
    model_name: str
    model_version: int
    batch_size: int
    compute_ns: int
    ok: bool


Sink = Callable[[ExecutionSample], None]


@dataclass(slots=True)
class WorkItem:
    """One piece of work: inputs by name, outputs wanted (empty = all), an optional deadline."""

    feeds: dict[str, np.ndarray]
    output_names: list[str]
    deadline_ns: int = 0  # time.perf_counter_ns() after which it is not run; 0 = none


@dataclass(slots=True)
class WorkOutcome:
    outputs: list[tuple[TensorSpec, np.ndarray]] = field(default_factory=list)
    compute_ns: int = 0
    error: MlosError | None = None


def run_group(model: Runnable, runnable: list[tuple[WorkItem, list[TensorSpec], WorkOutcome]],
              max_rows: int = 0) -> None:
    """In a worker thread: runs each item, timing only the runtime (compute_ns). An item with more
    than `max_rows` rows (0 = no limit) runs in pieces of `max_rows` whose outputs are joined."""
    for item, specs, outcome in runnable:
        if item.deadline_ns and time.perf_counter_ns() >= item.deadline_ns:
            outcome.error = DeadlineExceeded("the deadline passed before the executor could run the work")
            continue
        start = time.perf_counter_ns()
        try:
            arrays = run_split(model, item.feeds, [s.name for s in specs], max_rows)
        except MlosError as exc:
            outcome.error = exc
            continue
        except Exception as exc:  # noqa: BLE001 - the runtime's failure belongs to this item alone
            outcome.error = Internal(f"the runtime failed: {runtime_message(exc)}")
            continue
        finally:
            outcome.compute_ns = time.perf_counter_ns() - start
        outcome.outputs = list(zip(specs, arrays))


def run_split(model: Runnable, feeds: dict[str, np.ndarray], names: list[str], max_rows: int) -> list[np.ndarray]:
    """The model's outputs for `feeds`, run `max_rows` rows at a time when the batch is larger, so the
    runtime never gets more rows than the model's max batch size."""
    rows = batch_size(feeds)
    if max_rows <= 0 or rows <= max_rows:
        return model.run(feeds, names)
    pieces = [
        model.run({k: v[start:start + max_rows] for k, v in feeds.items()}, names)
        for start in range(0, rows, max_rows)
    ]
    return [np.concatenate(parts) for parts in zip(*pieces, strict=True)]


def batch_size(feeds: dict[str, np.ndarray]) -> int:
    for array in feeds.values():
        return int(array.shape[0]) if array.ndim else 1
    return 0

