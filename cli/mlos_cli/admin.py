"""`mlos predict-deadline` and `mlos admission`: the scheduler's admin extension from a shell."""

from __future__ import annotations

import argparse

from grpc import aio

from mlos.scheduler.v1 import scheduler_pb2 as spb
from mlos.scheduler.v1 import scheduler_pb2_grpc as spbg
from mlos_common.bootstrap import client_channel, typed_error


def add_parsers(sub: argparse._SubParsersAction) -> None:
    pd = sub.add_parser("predict-deadline", help="what would happen to a request sent now (queues nothing)")
    pd.add_argument("model")
    pd.add_argument("--addr", default="127.0.0.1:8001", help="scheduler front door")
    pd.add_argument("--version", default="", help="model version (default: the loaded one)")
    pd.add_argument("--priority", type=int, default=0, help="1 = highest; 0 = the model's default")
    pd.add_argument("--timeout-ms", type=float, default=0.0, help="deadline from now (0 = the model's default)")
    pd.add_argument("--rows", type=int, default=1, help="batch rows the request would carry")
    adm = sub.add_parser("admission", help="admission decisions and miss-prediction calibration per model and priority")
    adm.add_argument("model", nargs="?", default="")
    adm.add_argument("--addr", default="127.0.0.1:8001", help="scheduler front door")


async def _call(addr: str, method: str, request):
    channel = client_channel(addr)
    try:
        return await getattr(spbg.SchedulerAdminStub(channel), method)(request, timeout=30.0)
    except aio.AioRpcError as exc:
        raise typed_error(exc) from None
    finally:
        await channel.close()


async def predict_deadline(args: argparse.Namespace) -> int:
    r = await _call(args.addr, "PredictDeadline", spb.PredictDeadlineRequest(
        model_name=args.model, model_version=args.version, priority=args.priority,
        timeout_us=int(args.timeout_ms * 1000), batch_rows=args.rows,
    ))
    allowed = f"{r.allowed_ms:.2f} ms" if r.allowed_ms else "none"
    print(f"predicted completion  {r.predicted_completion_ms:.2f} ms  (queue {r.queue_ms:.2f} + execution "
          f"{r.execution_ms:.2f} + learned error {r.network_ms:.2f}; {r.queued_ahead} requests ahead; "
          f"basis {r.basis})")
    print(f"allowed               {allowed}")
    print(f"slack                 {r.slack_ms:.2f} ms" if r.allowed_ms else "slack                 -")
    print(f"miss probability      {r.miss_probability:.3f}")
    print(f"should preempt        {'yes' if r.should_preempt else 'no'}")
    print(f"would be admitted     {'yes' if r.would_admit else 'no (DEADLINE_EXCEEDED at once)'}")
    return 0


async def admission(args: argparse.Namespace) -> int:
    r = await _call(args.addr, "GetAdmissionStats", spb.GetAdmissionStatsRequest(model_name=args.model))
    print(f"{'MODEL':<16} {'V':>2} {'PRIO':>4} {'ADMITTED':>9} {'REJECTED':>9} {'EXPIRED':>8} {'MET':>9} "
          f"{'MISSED':>7} {'CANCEL':>6} {'BRIER':>7}")
    for s in sorted(r.stats, key=lambda s: (s.model_name, s.model_version, s.priority)):
        brier = f"{s.brier:.4f}" if s.brier_count else "-"
        print(f"{s.model_name:<16} {s.model_version:>2} {s.priority:>4} {s.admitted:>9} {s.rejected_predicted:>9} "
              f"{s.expired_queued:>8} {s.met:>9} {s.missed:>7} {s.cancelled:>6} {brier:>7}")
    return 0
