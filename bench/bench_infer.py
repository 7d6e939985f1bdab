"""End-to-end inference benchmark: our scheduler front door vs in-process ONNX Runtime (the floor).

For each model and concurrency C, back to back on the same machine state:
  floor: C Python threads sharing one onnxruntime.InferenceSession (default options, CPU);
  ours:  C asyncio tasks on one grpc.aio channel calling ModelInfer on the scheduler.
Closed loop, warm-up discarded, same input bytes for both. Prints a table, writes JSON.

    python bench/bench_infer.py                        # starts `mlos up` itself
    python bench/bench_infer.py --addr 127.0.0.1:8001  # an already running suite
    python bench/bench_infer.py --floor-only --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import platform
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort
from loadgen import (
    LoadResult,
    build_request,
    floor_outputs,
    infer_once,
    open_floor_session,
    run_floor,
    run_ours,
)
from suite_process import SuiteStartError, running_suite

from mlos_cli.demo import DemoModel, prepare_demo_models

logger = logging.getLogger("bench_infer")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MODEL_CHOICES = ("ocr_cls", "iris", "silero_vad")
ATOL = 1e-5


class BenchError(RuntimeError):
    """The benchmark cannot go on (the server is unreachable or rejects the model)."""


@dataclass(frozen=True)
class Row:
    repeat: int
    model: str
    concurrency: int
    floor: LoadResult | None
    ours: LoadResult | None
    loadavg_before: tuple[float, float, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "repeat": self.repeat,
            "model": self.model,
            "concurrency": self.concurrency,
            "floor": self.floor.to_json() if self.floor else None,
            "ours": self.ours.to_json() if self.ours else None,
            "loadavg_before": list(self.loadavg_before),
        }


@dataclass(frozen=True)
class Target:
    """One model to measure: its file for the floor, its request for ours, the same bytes."""

    model: DemoModel
    inputs: dict[str, np.ndarray]
    session: ort.InferenceSession


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="ocr_cls",
                   help=f"comma-separated demo models ({', '.join(MODEL_CHOICES)})")
    p.add_argument("--concurrency", default="1,8,32", help="comma-separated levels")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds discarded per run")
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured per run")
    p.add_argument("--repeat", type=int, default=1, help="repeat the whole sweep N times")
    p.add_argument("--addr", help="HOST:PORT of a running scheduler (default: start `mlos up`)")
    p.add_argument("--home", type=Path, help="suite/demo home (default: a temporary folder)")
    p.add_argument("--startup-timeout", type=float, default=180.0, help="seconds for `mlos up`")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--floor-only", action="store_true", help="measure the floor only")
    mode.add_argument("--ours-only", action="store_true", help="measure our server only")
    p.add_argument("--json", type=Path, help="output file (default: bench/results/...json)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    args.models = _csv(args.model)
    args.levels = [int(c) for c in _csv(args.concurrency)]
    if unknown := set(args.models) - set(MODEL_CHOICES):
        p.error(f"unknown model(s) {sorted(unknown)}; choose from {MODEL_CHOICES}")
    if not args.levels or min(args.levels) < 1 or args.repeat < 1 or args.duration <= 0:
        p.error("concurrency levels and --repeat must be >= 1, --duration > 0")
    return args


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def prepare_targets(home: Path, names: list[str]) -> list[Target]:
    available = {m.name: m for m in prepare_demo_models(home)}
    if missing := [n for n in names if n not in available]:
        raise SystemExit(f"demo model(s) not available here: {missing} (see the warnings above)")
    targets = []
    for name in names:
        model = available[name]
        inputs = model.sample_inputs(batch=1, seed=0)
        targets.append(Target(model, inputs, open_floor_session(str(model.path))))
    return targets


def check_outputs(addr: str, target: Target) -> dict[str, Any]:
    """One request through our server, compared with the floor on the same input bytes."""
    expected = floor_outputs(target.session, target.inputs)
    request = build_request(target.model.name, target.inputs)
    try:
        got = asyncio.run(infer_once(addr, request))
    except grpc.aio.AioRpcError as exc:
        return {"ok": False, "error": f"{exc.code().name}: {exc.details()}"}
    report: dict[str, Any] = {"ok": set(got) == set(expected), "outputs": {}}
    for name, want in expected.items():
        have = got.get(name)
        if have is None or have.shape != want.shape:
            shape = None if have is None else list(have.shape)
            report["outputs"][name] = {"shape": shape, "expected_shape": list(want.shape)}
            report["ok"] = False
            continue
        diff = np.abs(have.astype(np.float64) - want.astype(np.float64))
        close = bool(np.allclose(have, want, atol=ATOL))
        report["outputs"][name] = {"max_abs_diff": float(diff.max(initial=0.0)), "allclose": close}
        report["ok"] = report["ok"] and close
    if extra := set(got) - set(expected):
        report["unexpected_outputs"] = sorted(extra)
    return report


def sweep(args: argparse.Namespace, targets: list[Target], addr: str | None) -> list[Row]:
    rows = []
    for repeat in range(args.repeat):
        for target in targets:
            for conc in args.levels:
                rows.append(measure(args, target, addr, repeat, conc))
    return rows


def measure(
    args: argparse.Namespace, target: Target, addr: str | None, repeat: int, conc: int
) -> Row:
    name = target.model.name
    loadavg = os.getloadavg()
    floor = ours = None
    if not args.ours_only:
        logger.info("[%d] %s c=%d floor ...", repeat, name, conc)
        floor = run_floor(target.session, target.inputs, conc, args.warmup, args.duration)
    if addr is not None:
        logger.info("[%d] %s c=%d ours ...", repeat, name, conc)
        request = build_request(name, target.inputs)
        ours = asyncio.run(run_ours(addr, request, conc, args.warmup, args.duration))
    return Row(repeat, name, conc, floor, ours, loadavg)


def run(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    targets = prepare_targets(home, args.models)
    result: dict[str, Any] = {"models": _describe(targets), "target": None, "checks": {}}
    if args.floor_only:
        result["rows"] = [r.to_json() for r in sweep(args, targets, None)]
        return result
    if args.addr:
        return _run_against(args, targets, args.addr, result, {"addr": args.addr})
    with running_suite(home, args.startup_timeout) as suite:
        if missing := [t.model.name for t in targets if t.model.name not in suite.models]:
            logger.warning("the suite's ready event does not list %s", missing)
        return _run_against(args, targets, suite.scheduler_addr, result, suite.ready_event)


def _run_against(
    args: argparse.Namespace,
    targets: list[Target],
    addr: str,
    result: dict[str, Any],
    target_info: dict[str, Any],
) -> dict[str, Any]:
    result["target"] = target_info
    for t in targets:
        check = check_outputs(addr, t)
        result["checks"][t.model.name] = check
        if "error" in check:
            raise BenchError(f"{t.model.name}: ModelInfer on {addr} failed: {check['error']}")
        if not check["ok"]:
            logger.error("%s: our output differs from the floor's: %s", t.model.name, check)
    result["rows"] = [r.to_json() for r in sweep(args, targets, addr)]
    return result


def _describe(targets: list[Target]) -> dict[str, Any]:
    return {
        t.model.name: {
            "path": str(t.model.path),
            "source": t.model.source,
            "bytes": t.model.path.stat().st_size,
            "inputs": {k: {"dtype": str(v.dtype), "shape": list(v.shape)}
                       for k, v in t.inputs.items()},  # fmt: skip
        }
        for t in targets
    }


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": ort.get_available_providers(),
        "grpcio": grpc.__version__,
        "numpy": np.__version__,
        "loadavg_at_start": os.getloadavg(),
    }


def format_table(rows: list[dict[str, Any]], checks: dict[str, Any]) -> str:
    header = ("model", "conc", "floor req/s", "ours req/s", "ours/floor", "floor p50",
              "ours p50", "ours p99", "errors")  # fmt: skip
    lines = [header]
    for row in rows:
        floor, ours = row["floor"] or {}, row["ours"] or {}
        ratio = (ours["throughput_rps"] / floor["throughput_rps"]
                 if ours and floor and floor["throughput_rps"] else None)  # fmt: skip
        errors = {**{f"floor:{k}": v for k, v in floor.get("errors", {}).items()},
                  **ours.get("errors", {})}  # fmt: skip
        model = row["model"] + ("" if checks.get(row["model"], {}).get("ok", True) else " (MISMATCH)")
        lines.append((
            model, str(row["concurrency"]), _num(floor.get("throughput_rps"), 1),
            _num(ours.get("throughput_rps"), 1), _num(ratio, 3), _num(floor.get("p50_ms"), 3),
            _num(ours.get("p50_ms"), 3), _num(ours.get("p99_ms"), 3),
            ", ".join(f"{k}={v}" for k, v in errors.items()) or "0",
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [" | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(ln, widths)))
           for ln in lines]  # fmt: skip
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out) + "\n(latencies in ms, client side; ratio > 1 means faster than the floor)"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def write_json(path: Path | None, payload: dict[str, Any]) -> Path:
    if path is None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS_DIR / f"bench_infer-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def _run_in_home(args: argparse.Namespace) -> dict[str, Any]:
    if args.home is not None:
        args.home.mkdir(parents=True, exist_ok=True)
        return run(args, args.home)
    with tempfile.TemporaryDirectory(prefix="mlos-bench-") as tmp:
        return run(args, Path(tmp))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    started = dt.datetime.now(dt.UTC).isoformat()
    machine = machine_info()
    try:
        result = _run_in_home(args)
    except (BenchError, SuiteStartError) as exc:
        logger.error("%s", exc)
        return 2
    payload = {
        "benchmark": "bench_infer",
        "started_utc": started,
        "finished_utc": dt.datetime.now(dt.UTC).isoformat(),
        "machine": machine,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        **result,
    }
    path = write_json(args.json, payload)
    print(format_table(payload["rows"], payload["checks"]))
    print(f"results: {path}")
    checks_ok = all(c.get("ok") for c in payload["checks"].values())
    return 0 if checks_ok else 1


if __name__ == "__main__":
    sys.exit(main())
