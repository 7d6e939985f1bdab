"""Labelled feature rows of one kind in a bounded window, and the latest row per entity.

A `RowStore` keeps the last `capacity` labelled rows (oldest dropped first) in the order they
became labelled, which is chronological per entity and close to it overall; `snapshot()` sorts
by time, so a trainer's "last 20 %" is the most recent telemetry. Beside the labelled window it
keeps, per entity, the latest row (labelled or not) for scoring (GetScores), bounded by
`max_entities`: a new entity beyond it is not followed. Not thread-safe (one event loop);
snapshot() copies, so training can run on the copy in another thread.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Row:
    unix_ms: int  # time of the telemetry the features come from
    entity: str
    features: tuple[float, ...]  # in the kind's feature order (kinds.SPECS)


@dataclass(frozen=True, slots=True)
class Rows:
    """A snapshot of a kind's labelled rows, sorted by time (columns of equal length)."""

    x: np.ndarray  # float64 (n, F)
    y: np.ndarray  # float64 (n,)
    unix_ms: np.ndarray  # int64 (n,)
    entities: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def split(self, held_out_fraction: float) -> tuple[Rows, Rows]:
        """(older rows, the most recent `held_out_fraction` of rows)."""
        cut = len(self) - int(round(len(self) * held_out_fraction))
        return self.take(slice(0, cut)), self.take(slice(cut, len(self)))

    def take(self, index: slice | np.ndarray) -> Rows:
        ents = np.asarray(self.entities, dtype=object)[index]
        return Rows(self.x[index], self.y[index], self.unix_ms[index], tuple(ents.tolist()))


def empty_rows(width: int) -> Rows:
    return Rows(np.zeros((0, width)), np.zeros(0), np.zeros(0, dtype=np.int64), ())


class RowStore:
    def __init__(self, width: int, capacity: int, max_entities: int = 10000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.width = width
        self.capacity = capacity
        self.max_entities = max_entities
        self._labelled: deque[tuple[Row, float]] = deque(maxlen=capacity)
        self._latest: dict[str, Row] = {}
        self.added = 0  # labelled rows ever added (the loop trains when enough are new)

    def follows(self, entity: str) -> bool:
        """Whether `entity` is (or may become) followed: known, or room for one more."""
        return entity in self._latest or len(self._latest) < self.max_entities

    def observe(self, row: Row) -> None:
        """Makes `row` its entity's latest (unlabelled until `label` is called for it)."""
        if self.follows(row.entity):
            self._latest[row.entity] = row

    def label(self, row: Row, y: float) -> None:
        self._labelled.append((row, y))
        self.added += 1

    def __len__(self) -> int:
        return len(self._labelled)

    def latest(self, entities: list[str] | None = None) -> list[Row]:
        """The latest row of each entity (all, sorted by name, when `entities` is None); an
        entity without one is left out (callers say which are missing)."""
        if entities is None:
            return [self._latest[e] for e in sorted(self._latest)]
        return [self._latest[e] for e in entities if e in self._latest]

    def labelled(self) -> list[tuple[Row, float]]:
        """A copy of the labelled window (cheap: rows are shared, not copied); `rows_of` turns it
        into arrays, e.g. in a worker thread, so the event loop only pays for the copy."""
        return list(self._labelled)

    def snapshot(self) -> Rows:
        return rows_of(self.labelled(), self.width)


def rows_of(pairs: list[tuple[Row, float]], width: int) -> Rows:
    """(row, label) pairs as a Rows snapshot sorted by time."""
    if not pairs:
        return empty_rows(width)
    pairs = sorted(pairs, key=lambda p: p[0].unix_ms)
    return Rows(
        x=np.array([r.features for r, _ in pairs], dtype=np.float64).reshape(len(pairs), width),
        y=np.array([y for _, y in pairs], dtype=np.float64),
        unix_ms=np.array([r.unix_ms for r, _ in pairs], dtype=np.int64),
        entities=tuple(r.entity for r, _ in pairs),
    )
