"""GetScores: the latest prediction for each entity the books follow, and the workload scale hint.

Scoring takes a `predict(kind, rows)` callable (the serving engine's, with its caches and
metrics), so the books never hold a model. The rows are each entity's latest feature row (rows.RowStore.latest).

Scale hint (workload only): executors_needed = ceil(sum over the scored models of
forecast_rate [requests/s] x mean compute seconds per item [LatencyBook, every version and
batch size] / (0.7 x 1)), i.e. executors kept at most 70 % busy, each running one execution
at a time. Models without latency telemetry add nothing (their cost is unknown); 0 when no
scored model has both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mlos_predictor.errors import BadKind, UnknownEntity
from mlos_predictor.intake import Intake

SCORED_KINDS = ("workload", "failure", "threat")
TARGET_BUSY = 0.7


class Scored(Protocol):
    """What a predict callable returns per row (the engine's Result has these fields)."""

    @property
    def value(self) -> float: ...
    @property
    def reason(self) -> str: ...
    @property
    def cached(self) -> bool: ...
    @property
    def model_version(self) -> int: ...


PredictFn = Callable[[str, np.ndarray], Sequence[Scored]]


@dataclass(frozen=True, slots=True)
class EntityScore:
    entity: str
    result: Scored
    unix_ms: int
    features: tuple[float, ...]


def executors_needed(forecast_rate: Mapping[str, float], item_s: Mapping[str, float]) -> float:
    """ceil(sum of rate x seconds per item / 0.7) over models known to both (module docstring)."""
    load = sum(max(rate, 0.0) * item_s[m] for m, rate in forecast_rate.items() if m in item_s)
    return float(math.ceil(load / TARGET_BUSY - 1e-9)) if load > 0 else 0.0


def scores(
    kind: str, entities: Sequence[str], intake: Intake, predict: PredictFn
) -> tuple[list[EntityScore], float]:
    """(scores, executors_needed) for `kind`'s entities (all followed ones when empty).

    BadKind for a kind other than workload, failure, threat; UnknownEntity naming the asked
    entities the predictor has no telemetry for."""
    if kind not in SCORED_KINDS:
        raise BadKind(f"GetScores takes kind {', '.join(SCORED_KINDS)}; got {kind!r}")
    store = intake.stores()[kind]
    rows = store.latest(list(entities) if entities else None)
    if entities and len(rows) < len(set(entities)):
        found = {r.entity for r in rows}
        missing = sorted(set(entities) - found)
        raise UnknownEntity(
            f"no {kind} telemetry for {', '.join(map(repr, missing))}; "
            f"{len(store.latest())} entities are followed (ask with no entities to list them)"
        )
    if not rows:
        return [], 0.0
    results = predict(kind, np.array([r.features for r in rows], dtype=np.float64))
    out = [EntityScore(r.entity, res, r.unix_ms, r.features) for r, res in zip(rows, results, strict=True)]
    needed = 0.0
    if kind == "workload":
        needed = executors_needed({s.entity: s.result.value for s in out}, intake.latency.mean_item_s())
    return out, needed
