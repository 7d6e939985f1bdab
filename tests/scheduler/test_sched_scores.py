"""The score table's ageing, the threat gate's decisions and the failure-risk steering, on their own
(a fake clock; the end-to-end decisions through real gRPC are in test_sched_decisions.py)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from mlos_common.errors import PermissionDenied, ResourceExhausted
from mlos_scheduler.client_stats import ClientBook
from mlos_scheduler.front_door import FrontDoor, is_loopback
from mlos_scheduler.risk import FailureRisk
from mlos_scheduler.scores import Score, ScoreTable
from mlos_scheduler.threat import ClientDenied, ClientRateLimited, ThreatGate, reason_category


class Clock:
    def __init__(self) -> None:
        self.s = 100.0
        self.unix_ms = 1_700_000_000_000

    def __call__(self) -> float:
        return self.s

    def wall_ms(self) -> int:
        return self.unix_ms

    def advance(self, seconds: float) -> None:
        self.s += seconds
        self.unix_ms += int(seconds * 1000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def table(clock: Clock) -> ScoreTable:
    return ScoreTable(stale_after_s=2.0, max_age_s=30.0, clock=clock, wall_ms=clock.wall_ms)


def score(clock: Clock, entity: str, value: float, reason: str = "", telemetry_age_s: float = 0.0) -> Score:
    return Score(entity, value, reason, clock.unix_ms - int(telemetry_age_s * 1000), clock())


def test_scores_go_stale_unless_the_predictor_says_them_again(table: ScoreTable, clock: Clock) -> None:
    table.replace("failure", [score(clock, "ex-1", 0.9)])
    assert table.get("failure", "ex-1").value == 0.9
    clock.advance(1.9)
    assert table.get("failure", "ex-1") is not None
    assert table.expires_in_s(table.scores("failure")[0]) == pytest.approx(0.1)
    clock.advance(0.1)
    assert table.get("failure", "ex-1") is None  # stale: not acted on
    assert table.scores("failure")[0].value == 0.9  # but still shown
    table.replace("failure", [score(clock, "ex-1", 0.9)])
    assert table.get("failure", "ex-1") is not None
    table.replace("failure", [])
    assert table.get("failure", "ex-1") is None and table.scores("failure") == []


def test_scores_from_old_telemetry_are_not_acted_on(table: ScoreTable, clock: Clock) -> None:
    table.replace("threat", [score(clock, "old", 0.99, telemetry_age_s=31), score(clock, "new", 0.99, telemetry_age_s=29),
                             Score("unstated", 0.99, "", 0, clock())])
    assert table.get("threat", "old") is None
    assert table.get("threat", "new") is not None and table.get("threat", "unstated") is not None
    with pytest.raises(ValueError, match="stale_after_s"):
        ScoreTable(stale_after_s=0)


def test_watched_kinds_keep_their_flagged_entities_apart(table: ScoreTable, clock: Clock) -> None:
    table.replace("threat", [score(clock, "a", 0.95), score(clock, "b", 0.2)])
    table.watch("threat", 0.8)  # watching after scores arrived flags them too
    assert set(table.flagged("threat")) == {"a"}
    table.replace("threat", [score(clock, "a", 0.1), score(clock, "b", 0.8)])
    assert set(table.flagged("threat")) == {"b"}  # at the threshold counts
    assert table.above("threat", "b").value == 0.8 and table.above("threat", "a") is None
    assert table.flagged("failure") == {} and table.above("failure", "b") is None
    clock.advance(2.0)
    assert table.above("threat", "b") is None  # flagged but stale


@pytest.mark.parametrize(
    ("reason", "category"),
    [
        ("burst_ratio 14.0: rate 14x its usual", "burst"),
        ("rate_per_s 900 is far above the fleet", "rate"),
        ("350 requests/s", "rate"),
        ("malformed_fraction 0.9 of requests refused as malformed", "malformed"),
        ("shape_error_fraction 0.5", "shape"),
        ("nonfinite_fraction 1.0 (NaN or infinite values)", "nonfinite"),
        ("log_value_absmax 40: values beyond 1e6", "values"),
        ("log_bytes_max 19 (payload of 200 MB)", "payload"),
        ("", "other"),
        ("something new", "other"),
    ],
)
def test_reason_categories(reason: str, category: str) -> None:
    assert reason_category(reason) == category


def gate_of(table: ScoreTable, action: str = "block") -> tuple[ThreatGate, CollectorRegistry]:
    registry = CollectorRegistry()
    return ThreatGate(table, block_score=0.8, action=action, registry=registry), registry  # type: ignore[arg-type]


def decisions(registry: CollectorRegistry, decision: str, code: str, reason: str) -> float:
    labels = {"decision": decision, "code": code, "reason": reason}
    return registry.get_sample_value("mlos_scheduler_threat_decisions_total", labels) or 0.0


def test_threat_gate_rate_limits_bursts_and_says_for_how_long(table: ScoreTable, clock: Clock) -> None:
    gate, registry = gate_of(table)
    table.replace("threat", [score(clock, "mallory", 0.93, "burst_ratio 12 (rate 12x its usual)"), score(clock, "alice", 0.1)])
    assert gate.refusal("alice") is None  # below the threshold: served
    assert gate.refusal("nobody") is None  # unknown: served
    clock.advance(0.5)
    error = gate.refusal("mallory")
    assert isinstance(error, ClientRateLimited) and isinstance(error, ResourceExhausted)
    message = error.message
    for part in ("'mallory'", "0.93", "threat_block_score 0.8", "burst_ratio 12", "next 1.5 s", "fewer requests"):
        assert part in message, (part, message)
    assert decisions(registry, "refused", "RESOURCE_EXHAUSTED", "burst") == 1
    clock.advance(1.5)
    assert gate.refusal("mallory") is None  # the score went stale: served again


def test_threat_gate_denies_other_reasons_and_off_only_observes(table: ScoreTable, clock: Clock) -> None:
    gate, registry = gate_of(table)
    table.replace("threat", [score(clock, "eve", 0.85, "malformed_fraction 0.9")])
    error = gate.refusal("eve")
    assert isinstance(error, ClientDenied) and isinstance(error, PermissionDenied)
    for part in ("'eve'", "0.85", "threat_block_score 0.8", "malformed_fraction 0.9", "MLOS_SCHEDULER_THREAT_ACTION=off"):
        assert part in error.message, (part, error.message)
    assert decisions(registry, "refused", "PERMISSION_DENIED", "malformed") == 1

    observer, observed = gate_of(table, action="off")
    assert observer.refusal("eve") is None  # observed, not refused
    assert decisions(observed, "observed", "PERMISSION_DENIED", "malformed") == 1


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.4.5.6", True), ("::1", True), ("::ffff:127.0.0.1", True), ("unix:/tmp/s", True),
     ("localhost", True), ("10.0.0.7", False), ("::ffff:10.0.0.7", False), ("2001:db8::1", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_loopback_exemption_can_be_turned_off(table: ScoreTable, clock: Clock) -> None:
    gate, registry = gate_of(table)
    table.replace("threat", [score(clock, "127.0.0.1", 0.9, "burst_ratio 20")])
    FrontDoor(ClientBook(), None, gate).enter(None, "ipv4:127.0.0.1:5000", "m")  # exempt: served
    FrontDoor(ClientBook(), None, gate).enter(None, "ipv4:127.0.0.1:5000", "m")
    assert decisions(registry, "exempt", "RESOURCE_EXHAUSTED", "burst") == 2
    with pytest.raises(ClientRateLimited):
        FrontDoor(ClientBook(), None, gate, exempt_loopback=False).enter(None, "ipv4:127.0.0.1:5000", "m")
    table.replace("threat", [score(clock, "tool", 0.9, "burst_ratio 20")])
    with pytest.raises(ClientRateLimited):  # a loopback client that names itself is judged under that name
        FrontDoor(ClientBook(), None, gate).enter("tool", "ipv4:127.0.0.1:5000", "m")


def test_threat_gate_review_counts_flagged_clients(table: ScoreTable, clock: Clock) -> None:
    gate, registry = gate_of(table)
    table.replace("threat", [score(clock, "a", 0.9), score(clock, "b", 0.99), score(clock, "c", 0.1)])
    gate.review()
    assert registry.get_sample_value("mlos_scheduler_threat_flagged_clients") == 2
    clock.advance(5)
    gate.review()
    assert registry.get_sample_value("mlos_scheduler_threat_flagged_clients") == 0


class Port:
    """The part of an ExecutorPort the risk steering reads."""

    def __init__(self, addr: str, executor_id: str = "") -> None:
        self.addr, self.executor_id = addr, executor_id


def test_failure_risk_prefers_executors_that_are_not_risky(table: ScoreTable, clock: Clock) -> None:
    registry = CollectorRegistry()
    risk = FailureRisk(table, avoid_probability=0.5, registry=registry)
    a, b, c = Port("127.0.0.1:1", "ex-a"), Port("127.0.0.1:2", "ex-b"), Port("127.0.0.1:3")  # c: id not known yet
    table.replace("failure", [score(clock, "ex-a", 0.7, "error_rate 0.4"), score(clock, "ex-b", 0.2),
                              score(clock, "127.0.0.1:3", 0.5)])
    assert risk.review([a, b, c])
    assert risk.flagged == {a.addr, c.addr}
    assert registry.get_sample_value("mlos_scheduler_executor_failure_probability", {"executor": a.addr}) == 0.7

    assert risk.steer([a, b], []) == ([b], [])  # a risky holder is skipped while b can serve
    assert registry.get_sample_value("mlos_scheduler_risky_executor_avoided_batches_total", {"executor": a.addr}) == 1
    assert risk.steer([a, c], [b]) == ([a, c], [b])  # every holder risky: route as before, load it on b
    assert risk.steer([a], [c]) == ([a], [])  # nowhere better: never left without an executor

    clock.advance(2.0)  # scores stale: nobody is risky
    assert not risk.review([a, b, c]) and risk.steer([a, b], []) == ([a, b], [])
