"""The serving core of the five kinds: cache, one vectorised model call, reasons, metrics.

`Engine.predict(kind, rows)` is the one implementation behind gRPC Predict/PredictBatch, the
HTTP API and the learning loop's GetScores. It takes validated rows (rows.parse_row does that
for the doors; telemetry books build them within range) and answers one `Result` per row, in
order: rows found fresh in the kind's cache are answered from it, the rest go to the slot's
model in one call (OnnxModel and PriorModel take (n, F)).

Swapping a kind's model (`ModelSlot.swap`, `ModelSlot.with_version`) invalidates that kind's
cache: the engine notices the slot's new model or card on the next call that reads the kind
(predict, cache_stats, clear_cache) and clears the cache first, so no answer of the old model
is served after a swap. Single-threaded: call it from the service's event loop.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry

from mlos_common.errors import Internal
from mlos_predictor.cache import CacheStats, ResultCaches
from mlos_predictor.errors import BadFeatures
from mlos_predictor.kind_metrics import PredictionMetrics
from mlos_predictor.kinds import KINDS, SPECS
from mlos_predictor.models import ModelCard, ModelSlot, ServedModel
from mlos_predictor.reasons import explainers
from mlos_predictor.rows import check_count, spec_for

DEFAULT_MAX_BATCH = 1000
DEFAULT_CACHE_CAPACITY = 10_000


@dataclass(frozen=True, slots=True)
class Result:
    """One prediction: the kind's output in its unit, why (failure/threat; "" otherwise),
    whether the cache answered, and the registry version of the model (0 = the prior)."""

    value: float
    reason: str
    cached: bool
    model_version: int


class Engine:
    """Predictions for every kind in `slots` (kind -> ModelSlot)."""

    def __init__(
        self,
        slots: Mapping[str, ModelSlot],
        caches: ResultCaches[Result],
        metrics: PredictionMetrics,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self.slots = dict(slots)
        self.caches = caches
        self.metrics = metrics
        self.max_batch = max_batch
        self._explainers = explainers()
        self._served: dict[str, tuple[ServedModel, ModelCard]] = {k: (s.model, s.card) for k, s in self.slots.items()}

    def _slot(self, kind: str) -> ModelSlot:
        """The kind's slot, after invalidating its cache if the slot changed since last seen."""
        slot = self.slots.get(kind)
        if slot is None:
            spec_for(kind)  # UnknownKind for a kind that does not exist
            raise BadFeatures(f"this predictor does not serve {kind!r}")
        model, card = self._served[kind]
        if slot.model is not model or slot.card is not card:
            self.caches[kind].clear()
            self._served[kind] = (slot.model, slot.card)
        return slot

    def predict(self, kind: str, rows: np.ndarray, *, no_cache: bool = False) -> list[Result]:
        """One Result per row of `rows` (float64 (n, F), 1 <= n <= max_batch, validated).
        `no_cache` computes every row (and refreshes the cache with the answers)."""
        start = time.perf_counter()
        slot = self._slot(kind)
        spec = slot.spec
        if rows.ndim != 2 or rows.shape[1] != spec.width:
            raise BadFeatures(f"{kind} rows must be (n, {spec.width}) ({', '.join(spec.names)}), got {rows.shape}")
        n = rows.shape[0]
        check_count(spec, n, self.max_batch)
        rows = np.ascontiguousarray(rows, dtype=np.float64)
        cache = self.caches[kind]
        keys = [row.tobytes() for row in rows]
        out: list[Result | None]
        if no_cache:
            out, misses = [None] * n, list(range(n))
        else:
            out = [cache.get(key) for key in keys]
            misses = [i for i, r in enumerate(out) if r is None]
        if misses:
            todo = rows if len(misses) == n else rows[misses]
            values = slot.model.predict(todo)
            if values.shape != (len(misses),):
                raise Internal(f"the {kind} model answered shape {values.shape} for {len(misses)} rows")
            explainer = self._explainers.get(kind)
            reasons = explainer.explain(todo) if explainer is not None else [""] * len(misses)
            version = slot.card.version
            for i, value, reason in zip(misses, values.tolist(), reasons):
                out[i] = Result(value, reason, False, version)
                cache.put(keys[i], Result(value, reason, True, version))
        self.metrics.record(kind, n, n - len(misses), time.perf_counter() - start)
        return out  # type: ignore[return-value]  # every None was filled above

    def cache_stats(self, kinds: Iterable[str]) -> list[CacheStats]:
        kinds = list(kinds)
        for kind in kinds:
            self._slot(kind)
        return self.caches.stats(kinds)

    def clear_cache(self, kinds: Iterable[str]) -> int:
        """Drops the cached results of `kinds`; returns how many were dropped."""
        kinds = list(kinds)
        for kind in kinds:
            self._slot(kind)
        return self.caches.clear(kinds)


def build_engine(
    registry: CollectorRegistry | None = None,
    *,
    cache_capacity: int = DEFAULT_CACHE_CAPACITY,
    ttl_ms: Mapping[str, float] | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    metrics_window: int = 1024,
    slots: Mapping[str, ModelSlot] | None = None,
) -> Engine:
    """An Engine for every kind, each answering from its prior until a trained model is swapped
    in. `ttl_ms` overrides the kinds' default TTLs (kinds.SPECS[k].ttl_ms) per kind."""
    ttl = {k: SPECS[k].ttl_ms for k in KINDS} | dict(ttl_ms or {})
    return Engine(
        slots if slots is not None else {k: ModelSlot(SPECS[k]) for k in KINDS},
        ResultCaches(ttl, cache_capacity),
        PredictionMetrics(KINDS, registry, metrics_window),
        max_batch,
    )
