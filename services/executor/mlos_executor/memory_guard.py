"""Memory around a model load: predicted before, measured during, accounted after (budget.py).

`MemoryGuard` is the memory side of ExecutorCore.load:
- `admit`: reads the model's memory facts (memory.py); when there is a budget, asks `predict`
  (the predictor's `memory` model, injected: no grpc here) for the footprint of loading the model
  and warming it at its largest warm-up batch, within `predict_timeout_s`. When the predictor
  does not answer (none configured, unreachable, too slow, or an error) the kind's documented
  prior (kinds.SPECS["memory"].prior) is computed here instead, and the refusal says so. The
  prediction is then reserved in the budget, or the load is refused (RESOURCE_EXHAUSTED).
- `start`: the resident memory before the load; the load calls `mark(batch_size)` after each
  warm-up batch size (from its worker thread).
- `finish`: the resident growth since `start`, at least the model file's size, settles the budget
  (the growth reads low, even 0, when the allocator reuses memory an unloaded or evicted model
  freed; the weights are in memory at least once, so the file's bytes are the floor); one MemoryMeasurement per
  warm-up batch size goes to `on_sample` (the telemetry stream's MemorySample), but only for a
  clean measurement: loads that overlapped each other measured each other, so none of them is
  sent (counted in `samples_skipped`). Executions running meanwhile blur a measurement too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlos_common.errors import MlosError
from mlos_executor.budget import MB, Footprint, Key, MakeRoom, MemoryBudget
from mlos_executor.errors import ModelLoadFailed
from mlos_executor.memory import MemoryFacts, memory_facts, memory_row, rss_bytes
from mlos_predictor.kinds import SPECS

# a `memory` feature row -> (predicted footprint MB, who predicted it, in words)
Predict = Callable[[list[float]], Awaitable[tuple[float, str]]]


@dataclass(frozen=True, slots=True)
class MemoryMeasurement:
    """What one load took, warmed at `batch_size` (a MemorySample's content)."""

    model_name: str
    model_version: int
    facts: MemoryFacts
    batch_size: int
    rss_delta_bytes: int
    unix_ms: int


class LoadMeasure:
    """The resident memory around one load."""

    def __init__(self) -> None:
        self.rss_before_bytes = rss_bytes()
        self.marks: list[tuple[int, int]] = []  # (warm-up batch size, growth since the start)
        self.clean = True  # no other load ran meanwhile

    def mark(self, batch_size: int) -> None:
        self.marks.append((batch_size, rss_bytes() - self.rss_before_bytes))


@dataclass
class MemoryGuard:
    budget: MemoryBudget = field(default_factory=lambda: MemoryBudget(0))
    predict: Predict | None = None
    on_sample: Callable[[MemoryMeasurement], None] | None = None
    predict_timeout_s: float = 0.2
    samples_sent: int = 0
    samples_skipped: int = 0
    _active: list[LoadMeasure] = field(default_factory=list)

    async def admit(self, key: Key, path: Path, batch_size: int, make_room: MakeRoom | None = None) -> MemoryFacts:
        """The model's memory facts; reserves its predicted footprint at `batch_size` when there
        is a budget (evicting through `make_room` when it does not fit), or raises
        MemoryBudgetExceeded (ModelLoadFailed when the graph is unreadable)."""
        try:
            facts = await asyncio.to_thread(memory_facts, path)
        except Exception as exc:  # noqa: BLE001 - whatever onnx raises on a file it cannot parse
            raise ModelLoadFailed(
                f"model {key[0]!r} v{key[1]} is not a model onnxruntime can open: its ONNX graph cannot be "
                f"parsed ({type(exc).__name__}: {exc})"
            ) from None
        if self.budget.budget_bytes > 0:
            predicted_mb, who = await self.predicted_mb(memory_row(facts, batch_size))
            self.budget.reserve(key, int(predicted_mb * MB), who, make_room)
        return facts

    async def predicted_mb(self, row: list[float]) -> tuple[float, str]:
        """(footprint MB, who predicted it): the predictor, else the documented prior computed here."""
        if self.predict is None:
            why = "no predictor configured"
        else:
            try:
                return await asyncio.wait_for(self.predict(row), self.predict_timeout_s)
            except MlosError as exc:
                why = f"the predictor answered {exc.code}: {exc.message}"
            except TimeoutError:
                why = f"the predictor did not answer within {self.predict_timeout_s * 1000:.0f} ms"
        value = float(SPECS["memory"].prior(np.array([row], dtype=np.float64))[0])
        return value, f"the memory kind's documented prior, computed locally ({why})"

    def start(self) -> LoadMeasure:
        measure = LoadMeasure()
        if self._active:
            measure.clean = False
            for other in self._active:
                other.clean = False
        self._active.append(measure)
        return measure

    def abandon(self, key: Key, measure: LoadMeasure) -> None:
        """The load failed: its reservation goes, nothing is reported."""
        self._active.remove(measure)
        self.budget.abandon(key)

    def finish(self, key: Key, facts: MemoryFacts, measure: LoadMeasure) -> Footprint:
        """The load finished: its measured growth settles the budget; samples go out if clean."""
        self._active.remove(measure)
        footprint = self.budget.settle(key, max(rss_bytes() - measure.rss_before_bytes, facts.file_bytes))
        if self.on_sample is None:
            return footprint
        if not measure.clean:
            self.samples_skipped += len(measure.marks)
            return footprint
        now_ms = int(time.time() * 1000)
        for batch_size, delta in measure.marks:
            self.on_sample(MemoryMeasurement(key[0], key[1], facts, batch_size, delta, now_ms))
            self.samples_sent += 1
        return footprint

    def release(self, key: Key) -> None:
        self.budget.release(key)
