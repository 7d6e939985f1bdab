"""Books that turn telemetry samples into feature rows: workload, memory and threat.

Each book owns a RowStore (rows.py) of its kind and builds rows in kinds.SPECS feature order.
`add(sample)` returns None when the sample was used, or why it was refused (the sample is then
counted as rejected and changes nothing). Samples of one entity must come in time order; a
sample not later than the entity's previous one is refused. One event loop, no threads.

- workload (entity: model). A row at the end of each window: the last four windows' rates,
  the mean over the last 30, and the hour (UTC) of the next window's end. Its label is the next
  sample's rate, so a row is labelled when the next window arrives. Windows missing between two
  samples had no requests (a front door reports nothing for an idle model): the pending row is
  labelled 0 and the missing windows enter the history as zeros.
- memory (entity: model). One labelled row per sample: what a load measured (target
  rss_delta_bytes in MB).
- threat (entity: client). One row per window: rate, burst ratio against the client's previous
  minute, payload sizes, malformed / shape-error / non-finite fractions, largest value. There
  is no ground truth in live telemetry, so the held-out comparison uses a proxy label (see
  `misbehaves`): the client misbehaves in one of its windows within `horizon_ms` after the row.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from mlos_predictor.horizon import HorizonLabels
from mlos_predictor.kinds import SPECS, validate_row
from mlos_predictor.rowstore import Row, RowStore
from mlos_predictor.samples import ClientSample, MemorySample, RateSample

MIB = float(1 << 20)
HOUR_MS = 3_600_000
LONG_WINDOWS = 30
LOG_MAX_VALUE = math.log1p(1.7976931348623157e308)  # a non-finite value_absmax reads as the largest
MINUTE_MS = 60_000


class _Timed(Protocol):
    last_ms: int


S = TypeVar("S", bound=_Timed)


def entity_state(states: dict[str, S], store: RowStore, entity: str, unix_ms: int, new: Callable[[], S]) -> S | str:
    """The entity's state (a fresh one while the store has room for it), or why its sample is
    refused: too many entities followed, or not later than the entity's previous sample."""
    state = states.get(entity)
    if state is None:
        if not store.follows(entity):
            return f"following {store.max_entities} entities of this kind already; {entity!r} is not followed"
        return new()
    if unix_ms <= state.last_ms:
        return f"the sample of {entity!r} at {unix_ms} is not after its previous one ({state.last_ms})"
    return state


def hour_features(unix_ms: float) -> tuple[float, float]:
    """(sin, cos) of 2 pi hour/24 at `unix_ms` (UTC, fractional hours)."""
    angle = 2.0 * math.pi * ((unix_ms / HOUR_MS) % 24.0) / 24.0
    return math.sin(angle), math.cos(angle)


@dataclass(slots=True)
class _Rates:
    rates: deque[float] = field(default_factory=lambda: deque(maxlen=LONG_WINDOWS))
    last_ms: int = 0
    pending: Row | None = None


class WorkloadBook:
    def __init__(self, capacity: int, max_entities: int = 10000) -> None:
        self.spec = SPECS["workload"]
        self.store = RowStore(self.spec.width, capacity, max_entities)
        self._models: dict[str, _Rates] = {}

    def add(self, s: RateSample) -> str | None:
        state = entity_state(self._models, self.store, s.model_name, s.unix_ms, _Rates)
        if isinstance(state, str):
            return state
        rate = s.requests / s.window_s
        missing = 0 if state.pending is None else round((s.unix_ms - state.last_ms) / (s.window_s * 1000)) - 1
        idle = [0.0] * min(max(missing, 0), LONG_WINDOWS)
        history = [*state.rates, *idle, rate][-LONG_WINDOWS:]
        lags = [history[max(0, len(history) - 1 - i)] for i in range(4)]  # short history: the oldest rate repeats
        features = (*lags, sum(history) / len(history), *hour_features(s.unix_ms + s.window_s * 1000))
        reason = validate_row(self.spec, features)
        if reason is not None:
            return reason
        self._models[s.model_name] = state
        if state.pending is not None:
            self.store.label(state.pending, 0.0 if idle else rate)
        state.rates.extend([*idle, rate])
        state.last_ms = s.unix_ms
        state.pending = Row(s.unix_ms, s.model_name, features)
        self.store.observe(state.pending)
        return None


class MemoryBook:
    def __init__(self, capacity: int, max_entities: int = 10000) -> None:
        self.spec = SPECS["memory"]
        self.store = RowStore(self.spec.width, capacity, max_entities)

    def add(self, s: MemorySample) -> str | None:
        features = (
            s.file_bytes / MIB,
            s.parameters / 1e6,
            float(s.nodes),
            s.input_bytes_per_item / 1024.0,
            s.output_bytes_per_item / 1024.0,
            float(s.batch_size),
        )
        reason = validate_row(self.spec, features)
        if reason is not None:
            return reason
        row = Row(s.unix_ms, s.model_name, features)
        self.store.observe(row)
        self.store.label(row, s.rss_delta_bytes / MIB)
        return None


def misbehaves(features: tuple[float, ...]) -> bool:
    """The threat proxy label's event: a window in which at least a fifth of the client's requests
    were refused as malformed or carried non-finite values."""
    return features[4] >= 0.2 or features[7] >= 0.2


@dataclass(slots=True)
class _Client:
    minute: deque[tuple[int, float]] = field(default_factory=deque)  # (unix_ms, rate) of the last minute
    last_ms: int = 0


class ThreatBook:
    def __init__(self, capacity: int, horizon_ms: int = 60_000, max_entities: int = 10000) -> None:
        self.spec = SPECS["threat"]
        self.store = RowStore(self.spec.width, capacity, max_entities)
        self.labels = HorizonLabels(self.store, horizon_ms)
        self._clients: dict[str, _Client] = {}

    def add(self, s: ClientSample) -> str | None:
        state = entity_state(self._clients, self.store, s.client, s.unix_ms, _Client)
        if isinstance(state, str):
            return state
        minute = state.minute
        while minute and minute[0][0] <= s.unix_ms - MINUTE_MS:
            minute.popleft()
        rate = s.requests / s.window_s
        before = sum(r for _, r in minute) / len(minute) if minute else rate
        absmax = s.value_absmax
        features = (
            rate,
            min(rate / before, 1e7) if before > 0 else 1.0,
            math.log1p(s.bytes_mean),
            math.log1p(s.bytes_max),
            s.malformed / s.requests,
            s.shape_errors / s.requests,
            math.log1p(absmax) if math.isfinite(absmax) else LOG_MAX_VALUE,
            s.nonfinite / s.values_sampled if s.values_sampled else 0.0,
        )
        reason = validate_row(self.spec, features)
        if reason is not None:
            return reason
        self._clients[s.client] = state
        minute.append((s.unix_ms, rate))
        state.last_ms = s.unix_ms
        row = Row(s.unix_ms, s.client, features)
        self.store.observe(row)
        if misbehaves(features):
            self.labels.add_event(s.client, s.unix_ms)
        self.labels.add_row(row)
        self.labels.advance(s.unix_ms, s.client)
        return None
