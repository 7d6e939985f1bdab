"""What the SLO benchmark does against one running suite (one policy), and the two cost checks.

Everything here talks to an already running front door at `addr`; bench_slo.py starts and stops
the suites (one per policy or setting) and reports.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass

import grpc
from loadgen import CONNECT_TIMEOUT_S, open_channel, run_ours
from peers.procstat import cmdline, cpu_s, descendants

from mlos.inference import grpc_service_pb2 as pb
from mlos.inference import grpc_service_pb2_grpc as pbg
from slo import admin
from slo.openloop import PriorityClass, class_payloads, poisson_schedule, run_open_loop, summarize


@dataclass(frozen=True)
class Plan:
    model: str
    request: pb.ModelInferRequest
    classes: list[PriorityClass]
    loads: list[float]           # multiples of capacity
    duration_s: float
    capacity_s: float            # closed-loop measurement length
    capacity_concurrency: int
    seed: int


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _ticker(label: str, schedule, every_s: float = 2.0) -> None:
    """Prints sent / answered counts while a run goes on (cancelled at its end)."""
    start = time.perf_counter()
    while True:
        await asyncio.sleep(every_s)
        sent = sum(1 for r in schedule.records if r.sent_s)
        answered = sum(1 for r in schedule.records if r.outcome)
        progress(f"  {label}: {time.perf_counter() - start:4.0f} s  sent {sent}/{len(schedule.records)}  "
                 f"answered {answered}")  # fmt: skip


async def _ready(addr: str) -> grpc.aio.Channel:
    channel = open_channel(addr)
    await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT_S)
    return channel


async def measure_capacity(addr: str, plan: Plan) -> float:
    """Closed-loop throughput at `capacity_concurrency` callers (after a second of warm-up)."""
    result = await run_ours(addr, plan.request, plan.capacity_concurrency, 1.0, plan.capacity_s)
    if not result.completed:
        raise RuntimeError(f"capacity run completed nothing: errors {result.errors}")
    return result.throughput_rps


async def open_loop_runs(addr: str, plan: Plan, capacity_rps: float, label: str) -> list[dict]:
    """One open-loop run per load factor: per-class client figures plus the scheduler's deltas."""
    channel = await _ready(addr)
    payloads = class_payloads(plan.request, plan.classes)
    runs = []
    try:
        for i, factor in enumerate(plan.loads):
            schedule = poisson_schedule(factor * capacity_rps, plan.duration_s, plan.classes, plan.seed + i)
            progress(f"[{label}] load {factor:.2f}x capacity = {schedule.rate_rps:.0f} req/s, "
                     f"{len(schedule.records)} requests over {plan.duration_s:.0f} s")  # fmt: skip
            adm_before = await admin.admission_snapshot(channel, plan.model)
            q_before = await admin.queue_snapshot(channel, plan.model)
            ticker = asyncio.ensure_future(_ticker(label, schedule))
            try:
                result = await run_open_loop(channel, payloads, plan.classes, schedule)
            finally:
                ticker.cancel()
            adm_after = await admin.admission_snapshot(channel, plan.model)
            q_after = await admin.queue_snapshot(channel, plan.model)
            rows = summarize(schedule, plan.classes)
            for row in rows:
                p = row["priority"]
                row["admission"] = (None if adm_after is None else
                                    admin.admission_delta((adm_before or {}).get(p), adm_after.get(p)))  # fmt: skip
            runs.append({"load": factor, "rate_rps": schedule.rate_rps, "wall_s": result["wall_s"],
                         "first_errors": result["first_errors"], "classes": rows,
                         "queue": admin.queue_delta(q_before, q_after)})  # fmt: skip
    finally:
        await channel.close()
    return runs


async def _load(channel: grpc.aio.Channel, model: str, config: dict | None) -> None:
    req = pb.RepositoryModelLoadRequest(model_name=model)
    if config is not None:
        req.parameters["config"].string_param = json.dumps(config)
    await pbg.GRPCInferenceServiceStub(channel).RepositoryModelLoad(req, timeout=120)


async def batching_on_off(addr: str, plan: Plan, rounds: int) -> dict:
    """Sequential requests (one caller) with batching off (max_batch_size 0 at load) and on (the
    registered config), alternating `rounds` times so drift hits both alike."""
    channel = await _ready(addr)
    out: dict[str, list[dict]] = {"off": [], "on": []}
    try:
        for r in range(rounds):
            for setting in ("off", "on"):
                await _load(channel, plan.model, {"max_batch_size": 0} if setting == "off" else None)
                before = await admin.queue_snapshot(channel, plan.model)
                result = await run_ours(addr, plan.request, 1, 0.5, plan.duration_s)
                after = await admin.queue_snapshot(channel, plan.model)
                progress(f"[batching {setting}] round {r + 1}/{rounds}: {result.throughput_rps:.0f} req/s, "
                         f"p50 {result.p50_ms or 0:.2f} ms")  # fmt: skip
                out[setting].append({"throughput_rps": result.throughput_rps, "p50_ms": result.p50_ms,
                                     "p99_ms": result.p99_ms, "errors": result.errors,
                                     "queue": admin.queue_delta(before, after)})  # fmt: skip
        await _load(channel, plan.model, None)
    finally:
        await channel.close()
    mean = {k: sum(x["throughput_rps"] for x in v) / len(v) for k, v in out.items()}
    on_queue = [x["queue"] for x in out["on"] if x["queue"] and x["queue"]["fast_path_share"] is not None]
    batches = sum(q["batches"] for q in on_queue)
    return {
        "rounds": out, "throughput_on_rps": mean["on"], "throughput_off_rps": mean["off"],
        "on_over_off": mean["on"] / mean["off"] if mean["off"] else None,
        "fast_path_share_on": sum(q["fast_path"] for q in on_queue) / batches if batches else None,
        "window_changes_per_batch_on": sum(q["window_changes"] for q in on_queue) / batches if batches else None,
    }


def scheduler_pids(suite_pid: int) -> list[int]:
    return [p for p in descendants(suite_pid) if any("mlos_scheduler" in part for part in cmdline(p))]


async def scheduler_cpu(addr: str, plan: Plan, suite_pid: int, rate_rps: float, label: str) -> dict:
    """Scheduler-process CPU per answered request over one open-loop run at `rate_rps`."""
    pids = scheduler_pids(suite_pid)
    if not pids:
        raise RuntimeError("no scheduler process found under the suite")
    channel = await _ready(addr)
    try:
        payloads = class_payloads(plan.request, plan.classes)
        schedule = poisson_schedule(rate_rps, plan.duration_s, plan.classes, plan.seed)
        cpu_before = sum(cpu_s(p) or 0.0 for p in pids)
        await run_open_loop(channel, payloads, plan.classes, schedule)
        cpu_used = sum(cpu_s(p) or 0.0 for p in pids) - cpu_before
    finally:
        await channel.close()
    answered = sum(1 for r in schedule.records if r.outcome in ("met", "late"))
    refused = sum(1 for r in schedule.records if r.outcome == "rejected")
    handled = len(schedule.records)
    progress(f"[cpu {label}] {handled} requests, scheduler CPU {cpu_used * 1e3:.0f} ms")
    return {"requests": handled, "answered": answered, "rejected": refused, "rate_rps": rate_rps,
            "scheduler_cpu_ms": cpu_used * 1e3,
            "cpu_ms_per_request": cpu_used * 1e3 / handled if handled else None}  # fmt: skip
