"""`mlos status`: each executor's runtime mode, memory budget and use, and loaded models' memory;
the predictor's scale hint (executors the forecast load needs) with the per-model forecasts."""

from __future__ import annotations

import argparse
import asyncio
import json

from google.protobuf.json_format import MessageToDict

from mlos.executor.v1 import executor_pb2 as epb
from mlos.predictor.v1 import predictor_pb2
from mlos_common.errors import MlosError

MB = 2**20
CALL_TIMEOUT_S = 3.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser("status", help="executors (mode, memory budget and use, models) and the predictor's scale hint")
    st.add_argument("--executor", action="append", default=[], metavar="ADDR",
                    help="an executor's gRPC address (repeatable; default: those `mlos up --executors N` starts)")
    st.add_argument("--executors", type=int, default=1, metavar="N",
                    help="with no --executor: the N executors of `mlos up` (127.0.0.1:8201, 8203, ...)")
    st.add_argument("--predictor", default="127.0.0.1:8301", help="predictor for the scale hint ('' = none)")
    st.add_argument("--json", action="store_true", help="one JSON object instead of the tables")


async def _executor(addr: str) -> epb.StatusResponse | str:
    from mlos_executor.client import ExecutorClient

    client = ExecutorClient(addr)
    try:
        return await client.status(CALL_TIMEOUT_S)
    except MlosError as exc:
        return f"{exc.code}: {exc.message}"
    finally:
        await client.close()


async def _workload(addr: str) -> predictor_pb2.GetScoresResponse | str:
    from mlos_predictor.client import PredictorClient

    try:
        async with PredictorClient(addr, timeout_s=CALL_TIMEOUT_S) as client:
            return await client.scores("workload")
    except MlosError as exc:
        return f"{exc.code}: {exc.message}"


def _mb(n: int) -> str:
    return f"{n / MB:.1f}"


def executor_lines(addr: str, s: epb.StatusResponse | str) -> list[str]:
    if isinstance(s, str):
        return [f"{addr:<21} unreachable ({s})"]
    budget = _mb(s.memory_budget_bytes) if s.memory_budget_bytes else "none"
    lines = [f"{addr:<21} {s.executor_id:<12} {s.runtime_mode:<16} {budget:>10} {_mb(s.memory_used_bytes):>8} "
             f"{_mb(s.rss_bytes):>8} {len(s.models):>6}"]
    lines += switch_lines(s)
    for m in sorted(s.models, key=lambda m: (m.model.name, m.model.version)):
        predicted = (f"; predicted {_mb(m.memory_predicted_bytes)} MB by {m.memory_predicted_by}"
                     if m.memory_predicted_by else "")
        lines.append(f"    {m.model.name} v{m.model.version}: {_mb(m.memory_bytes)} MB measured{predicted}")
        if m.task == "generate":
            g = m.generation
            lines.append(f"      {m.runtime}, {g.contexts} context(s) of {g.context_length} tokens, {g.threads} thread(s): "
                         f"{g.active} generating, {g.waiting} waiting, {g.completed} done, {g.cancelled} cancelled, "
                         f"{g.tokens} tokens, {g.preemptions} preemptions ({g.state_saves} KV states saved)")
    return lines + hardware_lines(s)


def hardware_lines(s: epb.StatusResponse) -> list[str]:
    """Free budget and evictions, why the runtime mode, NUMA placement, GPUs."""
    free = f"{_mb(s.memory_free_bytes)} MB free, " if s.memory_budget_bytes else ""
    lines = [f"    memory: {free}{s.evictions} eviction(s)"
             + "".join(f"; evicted {e.model.name} v{e.model.version} ({_mb(e.memory_bytes)} MB, idle {e.idle_s:.0f} s) "
                       f"for {e.for_model.name} v{e.for_model.version}" for e in s.recent_evictions[-3:])]
    if s.runtime_mode_reason:
        lines.append(f"    mode {s.runtime_mode}: {s.runtime_mode_reason}")
    if s.HasField("placement"):
        lines.append(f"    numa: {s.placement.reason} ({s.placement.numa_nodes} node(s))")
    lines += [f"    gpu {g.index} {g.name}: {_mb(g.free_bytes)} of {_mb(g.total_bytes)} MB free, budget "
              f"{_mb(g.budget_bytes)} MB{' (used)' if g.used else ''}" for g in s.gpus]
    if not s.gpus and s.gpu_note:
        lines.append(f"    gpu: none ({s.gpu_note})")
    return lines


def switch_lines(s: epb.StatusResponse) -> list[str]:
    """The output pool's and shared weights' counts, when those switches are on."""
    lines = []
    if s.memory_pool.enabled:
        p = s.memory_pool
        lines.append(f"    memory pool: {p.hits} hits, {p.misses} misses, {_mb(p.held_bytes)} MB held")
    if s.shared_weights.enabled:
        w = s.shared_weights
        lines.append(f"    shared weights: {w.initializers} initializer(s), {_mb(w.held_bytes)} MB held once, "
                     f"{_mb(w.saved_bytes)} MB saved")
    return lines


def scale_lines(addr: str, r: predictor_pb2.GetScoresResponse | str, answering: int) -> list[str]:
    if isinstance(r, str):
        return [f"scale hint: none (predictor {addr}: {r})"]
    lines = [f"scale hint: {r.executors_needed:g} executor(s) for the forecast load ({answering} answering; "
             f"predictor {addr})"]
    if r.scores:
        lines.append(f"    {'MODEL':<24} {'FORECAST REQ/S':>14}")
        for score in sorted(r.scores, key=lambda e: -e.prediction.value):
            lines.append(f"    {score.entity:<24} {score.prediction.value:>14.2f}")
    return lines


def _as_dict(addr: str, s: epb.StatusResponse | str) -> dict:
    if isinstance(s, str):
        return {"addr": addr, "error": s}
    return {
        "addr": addr, "executor_id": s.executor_id, "runtime_mode": s.runtime_mode,
        "memory_budget_bytes": s.memory_budget_bytes, "memory_used_bytes": s.memory_used_bytes, "rss_bytes": s.rss_bytes,
        "memory_free_bytes": s.memory_free_bytes, "evictions": s.evictions,
        "recent_evictions": [MessageToDict(e, preserving_proto_field_name=True) for e in s.recent_evictions],
        "runtime_mode_reason": s.runtime_mode_reason,
        "placement": MessageToDict(s.placement, preserving_proto_field_name=True, always_print_fields_with_no_presence=True),
        "gpus": [MessageToDict(g, preserving_proto_field_name=True) for g in s.gpus], "gpu_note": s.gpu_note,
        "memory_pool": MessageToDict(s.memory_pool, preserving_proto_field_name=True),
        "shared_weights": MessageToDict(s.shared_weights, preserving_proto_field_name=True),
        "models": [{"name": m.model.name, "version": m.model.version, "memory_bytes": m.memory_bytes,
                    "memory_predicted_bytes": m.memory_predicted_bytes, "memory_predicted_by": m.memory_predicted_by,
                    "runtime": m.runtime, "task": m.task, "idle_ms": m.idle_ms, "busy": m.busy,
                    **({"generation": MessageToDict(m.generation, preserving_proto_field_name=True)}
                       if m.task == "generate" else {})}
                   for m in s.models],
    }


async def status(args: argparse.Namespace) -> int:
    """Prints the tables (or JSON); exit status 1 when an executor did not answer."""
    addrs = args.executor or [f"127.0.0.1:{8201 + 2 * i}" for i in range(max(1, args.executors))]
    statuses = await asyncio.gather(*(_executor(a) for a in addrs))
    scores = await _workload(args.predictor) if args.predictor else "no predictor given"
    answering = sum(not isinstance(s, str) for s in statuses)
    if args.json:
        scale: dict = {"error": scores} if isinstance(scores, str) else {
            "executors_needed": scores.executors_needed,
            "forecasts": {e.entity: e.prediction.value for e in scores.scores},
        }
        print(json.dumps({"executors": [_as_dict(a, s) for a, s in zip(addrs, statuses)], "scale": scale}))
    else:
        print(f"{'EXECUTOR':<21} {'ID':<12} {'MODE':<16} {'BUDGET MB':>10} {'USED MB':>8} {'RSS MB':>8} {'MODELS':>6}")
        for addr, s in zip(addrs, statuses):
            print("\n".join(executor_lines(addr, s)))
        print("\n".join(scale_lines(args.predictor, scores, answering)))
    return 0 if answering == len(addrs) else 1
