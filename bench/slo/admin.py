"""The scheduler's own view around a run: GetQueueStats and GetAdmissionStats, as deltas.

Counters are cumulative, so a run's figures are after - before. Means (Brier, a reliability bin's
mean prediction and observed miss rate) are turned back into sums with their counts, subtracted,
and divided again. An RPC the scheduler does not implement (yet) gives None, shown as "n/a".
"""

from __future__ import annotations

import grpc

from mlos.scheduler.v1 import scheduler_pb2 as spb
from mlos.scheduler.v1 import scheduler_pb2_grpc as spbg

ADMISSION_COUNTERS = ("admitted", "rejected_predicted", "expired_queued", "met", "missed", "cancelled")
QUEUE_COUNTERS = ("requests", "batches", "fast_path", "window_changes")


async def _call(rpc, request):
    try:
        return await rpc(request, timeout=10)
    except grpc.aio.AioRpcError as exc:
        # Not there yet: UNIMPLEMENTED, or a servicer stub raising NotImplementedError (INTERNAL).
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED or "NotImplementedError" in (exc.details() or ""):
            return None
        raise


async def admission_snapshot(channel: grpc.aio.Channel, model: str) -> dict[int, spb.AdmissionStats] | None:
    """Per priority; None when GetAdmissionStats is not implemented."""
    reply = await _call(spbg.SchedulerAdminStub(channel).GetAdmissionStats, spb.GetAdmissionStatsRequest(model_name=model))
    if reply is None:
        return None
    return {s.priority: s for s in reply.stats if s.model_name == model}


async def queue_snapshot(channel: grpc.aio.Channel, model: str) -> spb.QueueStats | None:
    reply = await _call(spbg.SchedulerAdminStub(channel).GetQueueStats, spb.GetQueueStatsRequest(model_name=model))
    if reply is None:
        return None
    return next((q for q in reply.queues if q.model_name == model), None)


def _bins(stats: spb.AdmissionStats | None) -> dict[tuple[float, float], tuple[int, float, float]]:
    if stats is None:
        return {}
    return {(b.predicted_low, b.predicted_high): (b.count, b.mean_predicted * b.count, b.observed_miss_rate * b.count)
            for b in stats.reliability}


def admission_delta(before: spb.AdmissionStats | None, after: spb.AdmissionStats | None) -> dict | None:
    """A run's admission counters, Brier score and reliability table for one priority."""
    if after is None:
        return None
    out = {name: getattr(after, name) - (getattr(before, name) if before else 0) for name in ADMISSION_COUNTERS}
    count = after.brier_count - (before.brier_count if before else 0)
    total = after.brier * after.brier_count - (before.brier * before.brier_count if before else 0.0)
    out["brier_count"] = count
    out["brier"] = total / count if count > 0 else None
    old = _bins(before)
    table = []
    for key, (n, pred, obs) in sorted(_bins(after).items()):
        n0, pred0, obs0 = old.get(key, (0, 0.0, 0.0))
        dn = n - n0
        if dn > 0:
            table.append({"low": key[0], "high": key[1], "count": dn,
                          "mean_predicted": (pred - pred0) / dn, "observed_miss_rate": (obs - obs0) / dn})  # fmt: skip
    out["reliability"] = table
    return out


def queue_delta(before: spb.QueueStats | None, after: spb.QueueStats | None) -> dict | None:
    """A run's requests, batches, fast-path and window-change counts, and what they imply."""
    if after is None:
        return None
    out = {name: getattr(after, name) - (getattr(before, name) if before else 0) for name in QUEUE_COUNTERS}
    batches = out["batches"]
    out["mean_batch_size"] = out["requests"] / batches if batches else None
    # A scheduler that reports no policy predates the adaptive window: its zeros mean "not counted".
    counted = bool(after.policy) and batches > 0
    out["fast_path_share"] = out["fast_path"] / batches if counted else None
    out["window_changes_per_batch"] = out["window_changes"] / batches if counted else None
    out["window_us"] = after.window_us if after.policy else None
    out["policy"] = after.policy or None
    return out


def pooled_brier(deltas: list[dict | None]) -> float | None:
    """One Brier score over several priorities' deltas (weighted by their counts)."""
    pairs = [(d["brier"], d["brier_count"]) for d in deltas if d and d["brier"] is not None]
    count = sum(n for _, n in pairs)
    return sum(b * n for b, n in pairs) / count if count else None
