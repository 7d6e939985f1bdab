"""The front door's threat gate: refuses clients the predictor's threat model flags.

A client whose fresh threat score (scores.py) is at or above `block_score` is refused before any
work is done for its request (nothing decoded, nothing queued):
- RESOURCE_EXHAUSTED when the predictor's reason is about its request rate or bursts: it is
  rate-limited, and the message says for how long - until its score goes stale, unless the
  predictor, which still sees its (refused) requests, keeps scoring it this high;
- PERMISSION_DENIED for any other reason (malformed requests, shape misuse, NaN floods, huge
  payloads or values), with what to fix.
Both messages name the client, its score, the threshold and the reason. With action "off" the
gate only observes: the decision is counted, nothing is refused. The front door marks some
clients exempt (front_door.py: loopback peers without x-mlos-client); they are counted, not refused.

The reason is the predictor's text naming the feature that stands out most; `reason_category`
maps it to a few fixed categories (bounded Prometheus labels): burst and rate are rate limits.
Domain only: no grpc.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

from mlos_common.errors import PermissionDenied, ResourceExhausted
from mlos_scheduler.scores import Score, ScoreTable

log = logging.getLogger(__name__)

KIND = "threat"
ThreatAction = Literal["block", "off"]
RATE_CATEGORIES = frozenset({"burst", "rate"})
_CATEGORIES = (  # the first pattern found in the reason names its category
    ("burst", re.compile(r"burst", re.I)),
    ("rate", re.compile(r"rate_per_s|request rate|requests?/s|requests? per s", re.I)),
    ("malformed", re.compile(r"malformed", re.I)),
    ("shape", re.compile(r"shape|datatype", re.I)),
    ("nonfinite", re.compile(r"non-?finite|\bnan\b|infinit", re.I)),
    ("values", re.compile(r"value", re.I)),
    ("payload", re.compile(r"bytes|payload", re.I)),
)


@functools.lru_cache(maxsize=1024)  # a flagged client asks per request; its reason changes per poll
def reason_category(reason: str) -> str:
    """burst | rate | malformed | shape | nonfinite | values | payload | other."""
    for category, pattern in _CATEGORIES:
        if pattern.search(reason):
            return category
    return "other"


class ClientRateLimited(ResourceExhausted):
    """The client sends too much too fast for the threat model; it is refused for a while."""


class ClientDenied(PermissionDenied):
    """The client's requests look hostile to the threat model (not about their rate)."""


def refusal(client: str, score: Score, threshold: float, retry_s: float) -> ClientRateLimited | ClientDenied:
    """The error refusing `client`, saying why and what to do."""
    reason = score.reason or "no reason given"
    why = f"its threat score {score.value:.2f} is at or above threat_block_score {threshold:g} ({reason})"
    if reason_category(score.reason) in RATE_CATEGORIES:
        return ClientRateLimited(
            f"client {client!r} is rate-limited: {why}. Its requests are refused for the next {retry_s:.1f} s, "
            "and for longer while the predictor still scores it this high (refused requests count toward its "
            "rate): send fewer requests per second, then retry"
        )
    return ClientDenied(
        f"client {client!r} is refused: {why}. Fix what the reason names (malformed requests, shapes or "
        f"datatypes that do not fit the model, NaN or infinite values, oversized payloads), then retry in "
        f"{retry_s:.1f} s; if the client is legitimate, an operator can raise MLOS_SCHEDULER_THREAT_BLOCK_SCORE "
        "or set MLOS_SCHEDULER_THREAT_ACTION=off"
    )


class ThreatGate:
    def __init__(
        self, table: ScoreTable, block_score: float = 0.8, action: ThreatAction = "block",
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.table = table
        self.block_score = block_score
        self.action = action
        table.watch(KIND, block_score)
        r = registry or CollectorRegistry()
        self._decisions = Counter(
            "mlos_scheduler_threat_decisions",
            "Requests of clients whose threat score reached threat_block_score: refused (code "
            "RESOURCE_EXHAUSTED for rate limits, PERMISSION_DENIED otherwise), only observed "
            "(threat_action off) or exempt (a loopback peer without x-mlos-client), by the category "
            "of the predictor's reason.",
            ["decision", "code", "reason"], registry=r,
        )
        self._flagged_gauge = Gauge(
            "mlos_scheduler_threat_flagged_clients", "Clients with a fresh threat score at or above the threshold.",
            registry=r,
        )
        self._announced: set[str] = set()

    def refusal(self, client: str, exempt: bool = False) -> ClientRateLimited | ClientDenied | None:
        """The error to refuse `client` with when it is flagged now and the action is block (the
        decision is counted); None to serve it. An `exempt` client is never refused (counted as
        "exempt"). O(1), cheapest when no client is flagged."""
        if not self.table.flagged(KIND):
            return None
        now_s = self.table.clock()
        score = self.table.above(KIND, client, now_s)
        if score is None:
            return None
        # a flagged client's every request passes here: the message is built only to refuse
        category = reason_category(score.reason)
        code = ClientRateLimited.code if category in RATE_CATEGORIES else ClientDenied.code
        decision = "exempt" if exempt else "refused" if self.action == "block" else "observed"
        self._decisions.labels(decision, code, category).inc()
        if decision != "refused":
            return None
        return refusal(client, score, self.block_score, self.table.expires_in_s(score, now_s))

    def review(self) -> None:
        """After each poll: logs the clients that became flagged or stopped being flagged."""
        now_s = self.table.clock()
        fresh = {c: s for c, s in self.table.flagged(KIND).items() if self.table.fresh(s, now_s)}
        self._flagged_gauge.set(len(fresh))
        new = sorted(set(fresh) - self._announced)
        gone = sorted(self._announced - set(fresh))
        verb = "refused (unless exempt)" if self.action == "block" else "observed only (threat_action off)"
        for client in new[:10]:
            s = fresh[client]
            log.warning("client %r flagged: threat score %.2f >= %g (%s); %s", client, s.value, self.block_score,
                        s.reason or "no reason given", verb)
        if len(new) > 10:
            log.warning("%d more clients flagged", len(new) - 10)
        if gone:
            log.info("%d client(s) no longer flagged: %s", len(gone), ", ".join(repr(c) for c in gone[:10]))
        self._announced = set(fresh)
