"""What the front door learns of its traffic for the predictor: requests per model and per client.

Domain only (no grpc, no protobuf): predictor_link.py turns the windows into RateSample and
ClientSample messages.

- `RateBook`: requests received per model (admitted or refused) in the current window - the
  workload model's input. Only models the scheduler serves are counted (every one of them each
  window, zero included), so a flood of made-up model names cannot grow it.
- `ClientBook`: per client (see front_door.client_id) requests, malformed requests (refused as
  INVALID_ARGUMENT before queueing), shape errors (of those: the inputs did not fit the model's
  signature - names, datatypes, shapes, batch size), payload bytes (mean and max; see
  front_door.py for what they count), and a bounded sample of input values (largest finite
  |value|, non-finite count) - the threat model's input.
  At most `max_clients` are tracked per window, least recently seen evicted first (counted), so
  a flood of client ids cannot grow memory.
- `sample_values`: at most SAMPLE_ELEMENTS elements of a request's decoded inputs, strided
  across each tensor; numpy over views of the bytes, never a scan of a whole large tensor.

A request is counted in the window it arrived in: `ClientBook.record` hands back that window's
counts, and what is learned later of the request (its values, that it was malformed) goes there,
even if the window was drained meanwhile (then it is dropped), so a window never says more
malformed requests than requests. One event loop; not thread-safe.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import numpy as np

from mlos_common.tensors import DTYPES
from mlos_scheduler.domain import Tensor

SAMPLE_ELEMENTS = 256  # input elements inspected per request, at most
DEFAULT_MAX_CLIENTS = 1024


@dataclass(slots=True)
class ClientCounts:
    """One client's figures in one window (mutable while the window is open)."""

    requests: int = 0
    malformed: int = 0
    shape_errors: int = 0
    bytes_sum: int = 0
    bytes_max: int = 0
    value_absmax: float = 0.0  # largest finite |value| sampled
    values_sampled: int = 0
    nonfinite: int = 0

    def payload(self, nbytes: int) -> None:
        """One request's payload bytes."""
        self.bytes_sum += nbytes
        if nbytes > self.bytes_max:
            self.bytes_max = nbytes

    def values(self, tensors: Iterable[Tensor], budget: int = SAMPLE_ELEMENTS) -> None:
        """Adds a bounded sample of one request's input values."""
        absmax, sampled, nonfinite = sample_values(tensors, budget)
        if absmax > self.value_absmax:
            self.value_absmax = absmax
        self.values_sampled += sampled
        self.nonfinite += nonfinite


@dataclass(frozen=True, slots=True)
class ClientWindow:
    """What one client sent during one window (the ClientSample's figures)."""

    client: str
    requests: int
    malformed: int
    shape_errors: int
    bytes_mean: float
    bytes_max: int
    value_absmax: float
    values_sampled: int
    nonfinite: int


def sample_values(tensors: Iterable[Tensor], budget: int = SAMPLE_ELEMENTS) -> tuple[float, int, int]:
    """(largest finite |value|, elements sampled, of those NaN or infinite) over at most `budget`
    elements of the numeric inputs, evenly strided across each tensor (earlier inputs first).
    BYTES, BOOL and BF16 inputs are not sampled; a byte count that is not a whole number of
    elements is read up to its last whole element."""
    absmax = 0.0
    sampled = nonfinite = 0
    for t in tensors:
        left = budget - sampled
        if left <= 0:
            break
        dt = DTYPES.get(t.datatype)
        if dt is None or dt.numpy is None or dt.itemsize == 0 or dt.numpy.kind == "b":
            continue
        n = len(t.raw) // dt.itemsize
        if n == 0:
            continue
        values = np.frombuffer(t.raw, dt.numpy, count=n)
        if n > left:
            values = values[:: n // left][:left]
        sampled += values.size
        if dt.numpy.kind == "f":
            top = float(np.abs(values).max())  # NaN or inf when any value is not finite (one pass)
            if not math.isfinite(top):
                finite = np.isfinite(values)
                nonfinite += values.size - int(np.count_nonzero(finite))
                top = float(np.abs(values[finite]).max()) if finite.any() else 0.0
        else:
            top = max(abs(float(values.max())), abs(float(values.min())))
        if top > absmax:
            absmax = top
    return absmax, sampled, nonfinite


class ClientBook:
    """Per-client counts of the current window, at most `max_clients` of them (LRU)."""

    def __init__(self, max_clients: int = DEFAULT_MAX_CLIENTS) -> None:
        if max_clients < 1:
            raise ValueError(f"max_clients must be >= 1, got {max_clients}")
        self.max_clients = max_clients
        self._window: OrderedDict[str, ClientCounts] = OrderedDict()
        self.evicted = 0  # clients dropped (with their window's counts) to make room, all time

    def __len__(self) -> int:
        return len(self._window)

    def record(self, client: str) -> ClientCounts:
        """Counts one request of `client`; returns the window's counts for what follows (its
        payload, its values, whether it was malformed)."""
        window = self._window
        counts = window.get(client)
        if counts is None:
            if len(window) >= self.max_clients:
                window.popitem(last=False)
                self.evicted += 1
            counts = window[client] = ClientCounts()
        else:
            window.move_to_end(client)
        counts.requests += 1
        return counts

    def drain(self) -> list[ClientWindow]:
        """The closed window's figures per client that sent anything; a new window starts."""
        closed, self._window = self._window, OrderedDict()
        return [
            ClientWindow(
                client, c.requests, c.malformed, c.shape_errors, c.bytes_sum / c.requests, c.bytes_max,
                c.value_absmax, c.values_sampled, c.nonfinite,
            )
            for client, c in closed.items()
        ]


class RateBook:
    """Requests per served model in the current window. `served`: the names the scheduler serves
    now (a live view, e.g. the core's name -> version map); other names are not counted."""

    def __init__(self, served: Collection[str]) -> None:
        self._served = served
        self._counts: dict[str, int] = {}

    def count(self, model: str) -> None:
        if model in self._served:
            self._counts[model] = self._counts.get(model, 0) + 1

    def drain(self) -> list[tuple[str, int]]:
        """(model, requests) of the closed window for every model served now, zero included (a
        quiet window is data too); counts of models no longer served are dropped."""
        closed, self._counts = self._counts, {}
        return [(model, closed.get(model, 0)) for model in sorted(self._served)]
