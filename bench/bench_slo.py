"""SLO benchmark: the deadline-aware scheduler against FIFO (a setting of the same code), in one run.

    python bench/bench_slo.py                  # = make bench-slo: ocr_cls, loads 0.5/1.0/1.5x, 10 s each
    python bench/bench_slo.py --quick          # a short smoke run (2 s per load)
    python bench/bench_slo.py --mode batching  # sequential requests, batching on vs off
    python bench/bench_slo.py --mode cpu       # scheduler CPU per request, prediction on vs off
    python bench/bench_slo.py --mode all

slo: per policy (MLOS_SCHEDULER_POLICY=fifo, then deadline) a fresh `mlos up`; closed-loop
capacity is measured once (first policy) and both policies get the same Poisson arrivals at each
load factor, three priority classes with their own deadlines. Per policy x load x class: offered,
goodput, miss and early-reject rates, p50/p99 of the completed, client lag, and the scheduler's
admission counters, Brier score and reliability table (GetAdmissionStats deltas; "n/a" where the
scheduler does not implement it). Prints a table and target lines, writes JSON and a PNG to
bench/results/. Details and caveats: bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from bench_infer import machine_info, write_json
from loadgen import build_request
from slo import report, runs
from slo.openloop import PriorityClass
from suite_process import SuiteStartError, run_in_home, running_suite

from mlos_cli.demo import prepare_demo_models

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MODES = ("slo", "batching", "cpu")


def _classes(text: str) -> list[PriorityClass]:
    out = []
    for part in text.split(","):
        try:
            prio, deadline, share = part.split(":")
            out.append(PriorityClass(int(prio), float(deadline), float(share)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"class {part!r} is not PRIORITY:DEADLINE_MS:SHARE") from None
    return out


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=(*MODES, "all"), default="slo")
    p.add_argument("--model", default="ocr_cls", help="a demo model that batches (default ocr_cls)")
    p.add_argument("--rows", type=int, default=4,
                   help="batch rows per request (default 4: the model, not the Python processes, saturates first "
                        "on a 2-core host; see bench/README.md)")
    p.add_argument("--policies", default="fifo,deadline", help="scheduler policies, in this order")
    p.add_argument("--loads", type=_floats, default=[0.5, 1.0, 1.5], help="multiples of measured capacity")
    p.add_argument("--classes", type=_classes, default=_classes("1:50:20,2:200:30,3:2000:50"),
                   help="PRIORITY:DEADLINE_MS:SHARE,... (default 1:50:20,2:200:30,3:2000:50)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per open-loop run")
    p.add_argument("--capacity", type=float, default=None, help="req/s; skips the capacity measurement")
    p.add_argument("--capacity-duration", type=float, default=4.0)
    p.add_argument("--capacity-concurrency", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3,
                   help="batching mode: off/on alternations; cpu mode: predict on/off suite pairs")
    p.add_argument("--cpu-load", type=float, default=0.5, help="cpu mode: offered load, x capacity")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="2 s runs, 1 round: a smoke run, not a measurement")
    p.add_argument("--home", type=Path, default=None, help="suite home (default: a temporary folder)")
    p.add_argument("--json", type=Path, default=None, help="JSON path (default bench/results/bench_slo-<utc>.json)")
    p.add_argument("--startup-timeout", type=float, default=180.0)
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.quick:  # shorter defaults; options given explicitly still win
        p.set_defaults(duration=2.0, capacity_duration=2.0, rounds=1)
        args = p.parse_args(argv)
    args.policy_list = [x.strip() for x in args.policies.split(",") if x.strip()]
    return args


def _plan(args: argparse.Namespace, home: Path) -> runs.Plan:
    demos = {d.name: d for d in prepare_demo_models(home / "demo")}
    if args.model not in demos:
        raise SystemExit(f"bench_slo: {args.model!r} is not a demo model ({', '.join(demos)})")
    request = build_request(args.model, demos[args.model].sample_inputs(batch=args.rows, seed=0))
    return runs.Plan(args.model, request, args.classes, args.loads, args.duration, args.capacity_duration,
                     args.capacity_concurrency, args.seed)  # fmt: skip


def _capacity(args, plan, addr: str, out: dict) -> float:
    if args.capacity is None:
        runs.progress(f"measuring capacity: {plan.capacity_concurrency} callers, closed loop, {plan.capacity_s:.0f} s")
        args.capacity = asyncio.run(runs.measure_capacity(addr, plan))
        out["capacity_measured_rps"] = args.capacity
        runs.progress(f"capacity {args.capacity:.0f} req/s")
    return args.capacity


Job = tuple[tuple[str, str], Callable]  # ((policy, predict), job(suite)); one suite serves a run of equal keys


def _slo_jobs(args, plan, out: dict) -> list[Job]:
    policies: dict[str, list[dict]] = out.setdefault("policies", {})

    def job(policy: str):
        def run(suite) -> None:
            capacity = _capacity(args, plan, suite.scheduler_addr, out)
            policies[policy] = asyncio.run(runs.open_loop_runs(suite.scheduler_addr, plan, capacity, policy))
            out["targets"] = report.targets(policies)
        return run

    return [((policy, "true"), job(policy)) for policy in args.policy_list]


def _batching_jobs(args, plan, out: dict) -> list[Job]:
    def run(suite) -> None:
        out["batching"] = asyncio.run(runs.batching_on_off(suite.scheduler_addr, plan, args.rounds))

    return [((args.policy_list[-1], "true"), run)]


def _cpu_jobs(args, plan, out: dict) -> list[Job]:
    """Prediction on and off (separate suites), alternating `rounds` times; medians compared."""
    result: dict = out.setdefault("cpu", {"predict_true": {"rounds": []}, "predict_false": {"rounds": []}})

    def job(predict: str):
        def run(suite) -> None:
            rate = args.cpu_load * _capacity(args, plan, suite.scheduler_addr, out)
            result[f"predict_{predict}"]["rounds"].append(asyncio.run(
                runs.scheduler_cpu(suite.scheduler_addr, plan, suite.pid, rate, f"predict={predict}")))
        return run

    return [(("deadline", predict), job(predict)) for _ in range(args.rounds) for predict in ("true", "false")]


def _cpu_summary(result: dict) -> None:
    for side in ("predict_true", "predict_false"):
        per = [r["cpu_ms_per_request"] or 0.0 for r in result[side]["rounds"]]
        result[side]["cpu_ms_per_request"] = statistics.median(per)
    on, off = result["predict_true"]["cpu_ms_per_request"], result["predict_false"]["cpu_ms_per_request"]
    result["predict_over_no_predict"] = on / off if on and off else None


def run_jobs(args, home: Path, jobs: list[Job]) -> None:
    """Runs the jobs in order; consecutive jobs with the same settings share one fresh suite."""
    i = 0
    while i < len(jobs):
        (policy, predict), _ = jobs[i]
        group = []
        while i < len(jobs) and jobs[i][0] == (policy, predict):
            group.append(jobs[i][1])
            i += 1
        runs.progress(f"starting the suite (MLOS_SCHEDULER_POLICY={policy}, MLOS_SCHEDULER_PREDICT={predict})")
        env = {"MLOS_SCHEDULER_POLICY": policy, "MLOS_SCHEDULER_PREDICT": predict}
        with running_suite(home, args.startup_timeout, env=env) as suite:
            for job in group:
                job(suite)


def _print_summary(out: dict, json_path: Path, png: Path | None) -> None:
    if "policies" in out:
        print(f"model {out['model']}, capacity {out.get('capacity_rps', 0):.0f} req/s")
        print(report.format_table(out["policies"]))
        if "deadline" in out["policies"]:
            print("reliability of the miss prediction (deadline policy):")
            print(report.reliability_table(out["policies"]["deadline"]))
        print(report.format_targets(out["targets"]))
    if "batching" in out:
        b = out["batching"]
        print(f"batching on/off, sequential: {b['throughput_on_rps']:.0f} vs {b['throughput_off_rps']:.0f} req/s "
              f"(on/off {report.fmt(b['on_over_off'], '.3f')}; target >= 0.95), fast-path share "
              f"{report.fmt(b['fast_path_share_on'], '.3f')} (target > 0.8), window changes per batch "
              f"{report.fmt(b['window_changes_per_batch_on'], '.3f')} (target < 0.1)")  # fmt: skip
    if "cpu" in out:
        c = out["cpu"]
        print(f"scheduler CPU per request: predict {report.fmt(c['predict_true']['cpu_ms_per_request'], '.3f')} ms, "
              f"no predict {report.fmt(c['predict_false']['cpu_ms_per_request'], '.3f')} ms "
              f"(ratio {report.fmt(c['predict_over_no_predict'], '.3f')}; target <= 1.05)")  # fmt: skip
    if png:
        print(f"results: {json_path}  plot: {png}")
    elif "policies" in out:
        print(f"results: {json_path}  (no plot: pip install -e '.[bench]')")
    else:
        print(f"results: {json_path}")


def run(args: argparse.Namespace, home: Path) -> dict:
    plan = _plan(args, home)
    out: dict = {"model": args.model, "classes": [vars(c) for c in args.classes]}
    makers = {"slo": _slo_jobs, "batching": _batching_jobs, "cpu": _cpu_jobs}
    modes = MODES if args.mode == "all" else (args.mode,)
    run_jobs(args, home, [job for mode in modes for job in makers[mode](args, plan, out)])
    if "cpu" in out:
        _cpu_summary(out["cpu"])
    out["capacity_rps"] = args.capacity
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    started = dt.datetime.now(dt.UTC)
    machine = machine_info()
    try:
        result = run_in_home(args.home, "mlos-slo-", lambda home: run(args, home))
    except SuiteStartError as exc:
        print(f"bench_slo: the suite did not start: {exc}", file=sys.stderr)
        return 2
    payload = {"benchmark": "bench_slo", "started_utc": started.isoformat(),
               "finished_utc": dt.datetime.now(dt.UTC).isoformat(), "machine": machine,
               "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "classes"},
               **result}  # fmt: skip
    path = write_json(args.json or RESULTS_DIR / f"bench_slo-{started.strftime('%Y%m%dT%H%M%SZ')}.json", payload)
    png = report.plot(result["policies"], path.with_suffix(".png")) if "policies" in result else None
    _print_summary(payload, path, png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
