"""Failure risk in routing: the Dispatcher steers work away from executors the predictor flags.

An executor is *risky* while its fresh failure score (scores.py; entity = the executor id it
reports in Status, else its address) is at or above `avoid_probability`. Rules (dispatch.py
applies them):
- a batch goes to the holders of its model that are not risky, when there is one;
- when every usable holder is risky and a usable executor that is not risky does not hold the
  model yet, a batch of the model starts loading it there in the background (the batch itself
  goes to a risky holder: requests never wait on that load); once loaded it gets the batches;
- when every executor is risky, routing is as before: a model is never left without one;
- a new model is placed on an executor that is not risky first.
Each review (after every poll of the scores) logs the executors that became risky or stopped
being risky, and sets `mlos_scheduler_executor_failure_probability`; batches routed away are
counted in `mlos_scheduler_risky_executor_avoided_batches`. Domain only: no grpc.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

from mlos_scheduler.executors import ExecutorPort
from mlos_scheduler.scores import Score, ScoreTable

log = logging.getLogger(__name__)

KIND = "failure"


def entity_of(executor: ExecutorPort) -> str:
    """The failure model's name for an executor: its id (known from its Status), else its address."""
    return executor.executor_id or executor.addr


class FailureRisk:
    def __init__(
        self, table: ScoreTable, avoid_probability: float = 0.5, registry: CollectorRegistry | None = None
    ) -> None:
        self.table = table
        self.avoid_probability = avoid_probability
        table.watch(KIND, avoid_probability)
        r = registry or CollectorRegistry()
        self._probability = Gauge(
            "mlos_scheduler_executor_failure_probability",
            "The predictor's fresh failure probability per executor (0 when it has none).", ["executor"], registry=r,
        )
        self._avoided = Counter(
            "mlos_scheduler_risky_executor_avoided_batches",
            "Batches routed to another holder of their model because this executor's failure probability "
            "reached failure_avoid_probability.", ["executor"], registry=r,
        )
        self.flagged: set[str] = set()  # addresses of the executors risky at the last review

    def score(self, executor: ExecutorPort) -> Score | None:
        """The executor's fresh failure score at or above the threshold, else None."""
        return self.table.above(KIND, entity_of(executor))

    def risky(self, executor: ExecutorPort) -> bool:
        return self.score(executor) is not None

    def steer(
        self, ready: Sequence[ExecutorPort], others: Sequence[ExecutorPort]
    ) -> tuple[list[ExecutorPort], list[ExecutorPort]]:
        """`ready`: the usable holders a batch may go to; `others`: usable executors not holding the
        model. -> (the holders to route among, executors that are not risky to load the model on)."""
        safe = [e for e in ready if not self.risky(e)]
        if safe:
            if len(safe) < len(ready):
                for e in ready:
                    if e not in safe:
                        self._avoided.labels(e.addr).inc()
            return safe, []
        return list(ready), [e for e in others if not self.risky(e)] if ready else []

    def review(self, executors: Sequence[ExecutorPort]) -> bool:
        """After each poll: notes which executors are risky now, logs the changes, sets the gauge;
        returns whether any is risky."""
        now: set[str] = set()
        for e in executors:
            fresh = self.table.get(KIND, entity_of(e))
            self._probability.labels(e.addr).set(fresh.value if fresh is not None else 0.0)
            if fresh is not None and fresh.value >= self.avoid_probability:
                now.add(e.addr)
                if e.addr not in self.flagged:
                    log.warning(
                        "executor %s (%s): failure probability %.2f >= failure_avoid_probability %g (%s); "
                        "its models' batches go to executors that are not risky while one can serve them",
                        e.addr, entity_of(e), fresh.value, self.avoid_probability, fresh.reason or "no reason given",
                    )
        for addr in sorted(self.flagged - now):
            log.info("executor %s is no longer risky; it gets work again", addr)
        self.flagged = now
        return bool(now)
