"""Prefetch: load and warm the models the workload forecast says will get traffic, before it comes.

Each `poll` asks `forecast()` (the predictor's GetScores("workload"), injected: no grpc here)
for every followed model's forecast request rate. Models forecast at `min_rate` requests/s or
more that this executor does not hold (in any version) are taken highest rate first, one at a
time: `resolve` names the latest registered version (the registry), `load` loads and warms it
(ExecutorCore.load, so the memory budget applies: a model that does not fit is an outcome,
`no_room`, not an error; the executor's loader passes evict=False: a forecast never evicts a
loaded model, it takes free room only). The caller runs `poll` in the background every interval, so nothing on
the data plane waits for it. Every decision is logged and handed to `on_decision` (metrics).

Outcomes: loaded | no_room (memory budget) | not_registered | failed (anything else: the
registry or the load failed; logged as a warning, the others as info). Each poll's outcome (ok,
or no_forecast when the forecast could not be had) is counted in `polls` and given to `on_poll`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from mlos_common.errors import MlosError, NotFound
from mlos_executor.errors import MemoryBudgetExceeded

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Forecast:
    model: str
    rate: float  # requests/s forecast for the next window


@dataclass(frozen=True, slots=True)
class Target:
    """A registered model version to load."""

    name: str
    version: int
    sha256: str
    max_batch_size: int


@dataclass(frozen=True, slots=True)
class Decision:
    model: str
    rate: float
    outcome: str  # loaded | no_room | not_registered | failed
    detail: str = ""


def choose(forecasts: Iterable[Forecast], held: set[str], min_rate: float) -> list[Forecast]:
    """The forecasts worth a prefetch: rate >= min_rate, not held here; highest rate first."""
    wanted = [f for f in forecasts if f.rate >= min_rate and f.model not in held]
    return sorted(wanted, key=lambda f: (-f.rate, f.model))


@dataclass
class Prefetcher:
    forecast: Callable[[], Awaitable[list[Forecast]]]
    resolve: Callable[[str], Awaitable[Target]]  # raises NotFound for an unknown model
    load: Callable[[Target], Awaitable[object]]
    held: Callable[[], set[str]]  # model names loaded here
    min_rate: float = 0.5
    on_decision: Callable[[Decision], None] | None = None
    on_poll: Callable[[str], None] | None = None  # each poll's outcome: ok | no_forecast
    polls: dict[str, int] = field(default_factory=lambda: {"ok": 0, "no_forecast": 0})
    _forecast_down: bool = False

    async def poll(self) -> list[Decision]:
        """One round: the forecast, then a load per chosen model. Never raises an MlosError."""
        try:
            forecasts = await self.forecast()
        except MlosError as exc:
            self._polled("no_forecast")
            if not self._forecast_down:
                log.info("prefetch: no workload forecast (%s: %s); trying again next interval", exc.code, exc.message)
            self._forecast_down = True
            return []
        self._forecast_down = False
        self._polled("ok")
        return [await self._prefetch(f) for f in choose(forecasts, self.held(), self.min_rate)]

    def _polled(self, outcome: str) -> None:
        self.polls[outcome] += 1
        if self.on_poll is not None:
            self.on_poll(outcome)

    async def _prefetch(self, f: Forecast) -> Decision:
        try:
            target = await self.resolve(f.model)
            await self.load(target)
            decision = Decision(f.model, f.rate, "loaded", f"v{target.version}")
        except NotFound as exc:
            decision = Decision(f.model, f.rate, "not_registered", exc.message)
        except MemoryBudgetExceeded as exc:
            decision = Decision(f.model, f.rate, "no_room", exc.message)
        except MlosError as exc:
            decision = Decision(f.model, f.rate, "failed", f"{exc.code}: {exc.message}")
        level = logging.WARNING if decision.outcome == "failed" else logging.INFO
        log.log(level, "prefetch of %s (forecast %.2f requests/s): %s %s", f.model, f.rate, decision.outcome,
                decision.detail)
        if self.on_decision is not None:
            self.on_decision(decision)
        return decision
