"""Open-loop Poisson load with priority classes, over one grpc.aio channel.

Arrival instants are drawn up front (exponential gaps at the offered rate, a class per arrival by
the mix) from a seeded generator, so every policy sees the same sequence. The sender sleeps until
each instant and fires the request as a task, whatever happened to the earlier ones (open loop);
each record keeps when it was due and when it was actually sent, so client lag shows instead of
silently lowering the offered load. Requests are serialized once per class (the bytes are reused)
and answers are not parsed: the client's CPU goes to sending, not to protobuf.

A request carries its class's deadline twice: Triton's `timeout` parameter (µs) and the gRPC
deadline of the call. Outcomes:
  met       answered OK within the deadline (counted from when it was sent)
  late      answered OK after the deadline
  rejected  DEADLINE_EXCEEDED whose message says REJECT_MARK (refused at admission)
  expired   DEADLINE_EXCEEDED otherwise (in the queue, or the client's own deadline)
  error     any other status (by code name)
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import grpc
import numpy as np

from mlos.inference import grpc_service_pb2 as pb

REJECT_MARK = "predicted to miss"  # the scheduler's refusal: "... is predicted to miss its deadline: ..."
METHOD = "/inference.GRPCInferenceService/ModelInfer"


@dataclass(frozen=True)
class PriorityClass:
    priority: int
    deadline_ms: float
    share: float


@dataclass
class Record:
    cls: int             # index into the classes
    due_s: float         # scheduled instant, from the run's start
    sent_s: float = 0.0
    done_s: float = 0.0
    outcome: str = ""    # met | late | rejected | expired | error:<CODE>

    @property
    def latency_ms(self) -> float:
        return (self.done_s - self.sent_s) * 1e3


@dataclass
class Schedule:
    rate_rps: float
    duration_s: float
    records: list[Record] = field(default_factory=list)


def poisson_schedule(rate_rps: float, duration_s: float, classes: list[PriorityClass], seed: int) -> Schedule:
    rng = np.random.default_rng(seed)
    expected = int(rate_rps * duration_s * 1.2) + 16
    gaps = rng.exponential(1.0 / rate_rps, size=expected)
    times = np.cumsum(gaps)
    while times[-1] < duration_s:  # rare: draw more
        times = np.concatenate([times, times[-1] + np.cumsum(rng.exponential(1.0 / rate_rps, size=expected))])
    times = times[times < duration_s]
    shares = np.array([c.share for c in classes], dtype=np.float64)
    picks = rng.choice(len(classes), size=times.size, p=shares / shares.sum())
    return Schedule(rate_rps, duration_s, [Record(int(k), float(t)) for k, t in zip(picks, times)])


def class_payloads(request: pb.ModelInferRequest, classes: list[PriorityClass]) -> list[bytes]:
    """The request serialized once per class, with its priority and timeout parameters."""
    out = []
    for c in classes:
        msg = pb.ModelInferRequest()
        msg.CopyFrom(request)
        msg.parameters["priority"].int64_param = c.priority
        msg.parameters["timeout"].int64_param = int(c.deadline_ms * 1000)
        out.append(msg.SerializeToString())
    return out


def _classify(code: grpc.StatusCode, details: str) -> str:
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "rejected" if REJECT_MARK in (details or "") else "expired"
    return f"error:{code.name}"


async def _send(call, payload: bytes, record: Record, deadline_s: float, start: float, first_errors: dict) -> None:
    record.sent_s = time.perf_counter() - start
    try:
        await call(payload, timeout=deadline_s)
        record.done_s = time.perf_counter() - start
        record.outcome = "met" if record.done_s - record.sent_s <= deadline_s else "late"
    except grpc.aio.AioRpcError as exc:
        record.done_s = time.perf_counter() - start
        record.outcome = _classify(exc.code(), exc.details())
        first_errors.setdefault(record.outcome, (exc.details() or "")[:200])


async def run_open_loop(
    channel: grpc.aio.Channel, payloads: list[bytes], classes: list[PriorityClass], schedule: Schedule,
) -> dict:
    """Sends every scheduled request at its instant; returns once all are answered.
    The result's `first_errors` holds one message per outcome kind other than met/late."""
    call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
    deadlines = [c.deadline_ms / 1e3 for c in classes]
    first_errors: dict[str, str] = {}
    tasks = []
    start = time.perf_counter()
    for r in schedule.records:
        wait = r.due_s - (time.perf_counter() - start)
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.ensure_future(_send(call, payloads[r.cls], r, deadlines[r.cls], start, first_errors)))
    await asyncio.gather(*tasks)
    return {"wall_s": time.perf_counter() - start, "first_errors": first_errors}


def summarize(schedule: Schedule, classes: list[PriorityClass]) -> list[dict]:
    """Per class: offered, goodput, miss and early-reject rates, latency of the completed, client lag."""
    rows = []
    for k, c in enumerate(classes):
        recs = [r for r in schedule.records if r.cls == k]
        n = len(recs)
        counts: dict[str, int] = {}
        for r in recs:
            counts[r.outcome] = counts.get(r.outcome, 0) + 1
        met, rejected = counts.get("met", 0), counts.get("rejected", 0)
        done = np.array([r.latency_ms for r in recs if r.outcome in ("met", "late")])
        lag = np.array([(r.sent_s - r.due_s) * 1e3 for r in recs])
        admitted = n - rejected
        rows.append({
            "priority": c.priority, "deadline_ms": c.deadline_ms, "share": c.share,
            "offered": n, "offered_rps": n / schedule.duration_s, "outcomes": counts,
            "goodput_rps": met / schedule.duration_s, "goodput_share": met / n if n else None,
            "miss_rate": (admitted - met) / n if n else None,
            "early_reject_rate": rejected / n if n else None,
            "admitted_met_share": met / admitted if admitted else None,
            "p50_ms": float(np.percentile(done, 50)) if done.size else None,
            "p99_ms": float(np.percentile(done, 99)) if done.size else None,
            "lag_p99_ms": float(np.percentile(lag, 99)) if lag.size else None,
        })
    return rows
