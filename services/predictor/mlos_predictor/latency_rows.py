"""Latency rows: one labelled row per successful execution, from the state *before* it ran.

Features (kinds.SPECS["latency"] order): batch_size; mean_ms, the LatencyBook's window mean
for this (model, version, batch size) before this execution; recent_ms, the EWMA (alpha 0.2)
of this key's compute ms on this executor (0 before its first); executor_busy, executions the
executor finished in the 100 ms before this one (any model); idle_log_ms, ln(1 + ms since the
model last ran on this executor), an hour when it never ran there. Target: compute ms.

`observe(rec)` must be called before the LatencyBook records `rec` (so mean_ms excludes it).
Executions without a time (unix_ms 0), an executor id or a prior execution at their key make
no row; failed ones make none either. Entity: "model:version:batch:executor".

`expected_ms(keys, model)` is the served latency model's forecast per profile key, from the
latest row of that key (what LatencyProfile.expected_ms carries); 0 for a key without a row.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from mlos_predictor.kinds import SPECS, validate_row
from mlos_predictor.latency import ExecutionRecord, LatencyBook, ProfileKey
from mlos_predictor.models import ServedModel
from mlos_predictor.rowstore import Row, RowStore

ALPHA = 0.2
BUSY_MS = 100
NEVER_RAN_MS = 3_600_000


class LatencyRowBook:
    def __init__(self, book: LatencyBook, capacity: int, max_entities: int = 10000) -> None:
        self.spec = SPECS["latency"]
        self.store = RowStore(self.spec.width, capacity, max_entities)
        self._book = book
        self._max = max_entities
        self._recent: dict[tuple[str, int, int, str], float] = {}
        self._finished: dict[str, deque[int]] = {}  # executor -> unix_ms of its recent executions
        self._last_run: dict[tuple[str, str], int] = {}  # (model, executor) -> unix_ms
        self._latest: dict[ProfileKey, tuple[float, ...]] = {}

    def observe(self, rec: ExecutionRecord) -> None:
        if not rec.ok or rec.unix_ms <= 0 or not rec.executor_id:
            return
        ex = rec.executor_id
        key = (rec.model_name, rec.model_version, rec.batch_size)
        rkey = (*key, ex)
        if rkey not in self._recent and len(self._recent) >= self._max:
            return  # following as many (key, executor) pairs as allowed
        ms = rec.compute_ns / 1e6
        finished = self._finished.setdefault(ex, deque())
        while finished and finished[0] <= rec.unix_ms - BUSY_MS:
            finished.popleft()
        busy = sum(1 for t in finished if t < rec.unix_ms)
        last = self._last_run.get((rec.model_name, ex))
        idle_ms = NEVER_RAN_MS if last is None else max(0, rec.unix_ms - last)
        mean = self._book.profile_mean_ms(key)
        recent = self._recent.get(rkey, 0.0)
        features = (float(rec.batch_size), mean or 0.0, recent, float(busy), math.log1p(idle_ms))
        self._recent[rkey] = ms if recent == 0.0 else ALPHA * ms + (1 - ALPHA) * recent
        finished.append(rec.unix_ms)
        self._last_run[(rec.model_name, ex)] = max(rec.unix_ms, last or 0)
        if mean is None or validate_row(self.spec, features) is not None:
            return
        self._latest[key] = features
        row = Row(rec.unix_ms, f"{rec.model_name}:{rec.model_version}:{rec.batch_size}:{ex}", features)
        self.store.observe(row)
        self.store.label(row, ms)

    def expected_ms(self, keys: list[ProfileKey], model: ServedModel) -> list[float]:
        rows = [self._latest.get(k) for k in keys]
        known = [i for i, r in enumerate(rows) if r is not None]
        out = [0.0] * len(keys)
        if known:
            preds = model.predict(np.array([rows[i] for i in known], dtype=np.float64))
            for i, p in zip(known, preds):
                out[i] = max(float(p), 0.0)
        return out
