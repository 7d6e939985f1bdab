"""The executor's switches on and off, side by side in one run (issue 10's Performance table).

    make bench-executor                          # ~1.5 min: table + bench/results/bench_executor-<stamp>.json
    .venv/bin/python bench/bench_executor.py --quick --json /tmp/x.json    # seconds (the smoke test)

Every row runs the same workload through the executor's own path (ExecutorCore.execute: input
checks, worker threads, the session(s); no gRPC, so the switch is not drowned in ~0.5 ms of
transport) with the switch off and on, `--repeats` times each, interleaved (off, on, off, on ...)
so a change in the machine's load hits both. Each run: `concurrency` callers for `--duration-s`.
Per row: p50 / p99 latency (ms) and throughput (runs/s) as mean ± 95 % confidence half-width
over the repeats, and speedup = off / on (latency) and on / off (throughput).

Rows (what exists; NUMA pinning is another branch's, shared memory has bench/bench_shm.py):
- memory_pool: ocr_cls (demo model) at batch 8, and a synthetic 4 MiB-output model (X + 1,
  2^20 floats) at batch 1 and 8, where allocation could matter.
- shared_weights: one model on a 4096x4096 MatMul base at batch 8 (the latency price of
  running without prepacking); memory rows: RSS growth of loading two models that share the
  base, each case in a fresh process.
- threads: the executor's rule (1 intra-op thread per session with 2 execution slots on 2 cores)
  vs threads = every usable CPU (ONNX Runtime's own default here), ocr_cls batch 1 and 32, at 1
  and 2 callers.
- instances: 1 vs 2 sessions of ocr_cls at batch 8, 2 callers, 1 thread each.
- warmup: the first request right after a load, warm-up off vs on (prefetch loads and warms the
  same way); every repeat loads a fresh copy.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from onoff import finish, mean_ci, onoff_row

MB = 2**20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="runs per side of each row")
    p.add_argument("--duration-s", type=float, default=1.0, help="length of one run")
    p.add_argument("--base-side", type=int, default=4096, help="side of the shared base weight (4096 = 64 MiB)")
    p.add_argument("--quick", action="store_true", help="2 repeats of 0.15 s, a 1024 base, batch 4 for 32: a smoke run")
    p.add_argument("--json", type=Path, help="where the JSON goes (default bench/results/bench_executor-<stamp>.json)")
    p.add_argument("--memory-child", choices=("on", "off"), help=argparse.SUPPRESS)
    p.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.duration_s, args.base_side = 2, 0.15, 1024
    return args


# ---- models ----


def write_model(path: Path, nodes: list, inputs: list, outputs: list, weights: dict[str, np.ndarray]) -> Path:
    import onnx
    from onnx import helper, numpy_helper

    graph = helper.make_graph(nodes, path.stem, inputs, outputs, [numpy_helper.from_array(v, k) for k, v in weights.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def float_io(name: str, width: int):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", width])


def fine_tune(folder: Path, side: int, head: int) -> Path:
    """Y = X @ BASE + HEAD: BASE [side, side] equal in every fine-tune, HEAD [side] its own."""
    from onnx import helper

    base = np.random.default_rng(0).standard_normal((side, side)).astype(np.float32)
    bias = np.random.default_rng(head).standard_normal(side).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["X", "BASE"], ["H"]), helper.make_node("Add", ["H", "HEAD"], ["Y"])]
    return write_model(folder / f"tune{head}_{side}.onnx", nodes, [float_io("X", side)], [float_io("Y", side)],
                       {"BASE": base, "HEAD": bias})


def big_output(folder: Path, width: int = 1 << 20) -> Path:
    """Y = X + 1 over `width` floats: 4 MiB in and out per row."""
    from onnx import helper

    return write_model(folder / "big_output.onnx", [helper.make_node("Add", ["X", "ONE"], ["Y"])],
                       [float_io("X", width)], [float_io("Y", width)], {"ONE": np.ones(1, np.float32)})


# ---- one executor, in process ----


async def start_core(folder: Path, **settings: Any):
    from mlos_executor.config import ExecutorSettings
    from mlos_executor.memory_guard import MemoryGuard
    from mlos_executor.server import build_core

    async def fetch(name: str, version: int, dest: Path) -> tuple[Path, str]:
        target = dest / f".incoming-{name}-{version}"
        shutil.copyfile(folder / name, target)
        return target, hashlib.sha256(target.read_bytes()).hexdigest()

    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=folder))
    return build_core(ExecutorSettings(cache_dir=cache, **settings), fetch, memory=MemoryGuard())


async def timed_run(core, name: str, feeds: dict[str, np.ndarray], concurrency: int, duration_s: float) -> dict:
    latencies: list[float] = []
    end = time.perf_counter() + duration_s

    async def caller() -> None:
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            await core.execute(name, 1, feeds, [])
            latencies.append(time.perf_counter() - t0)

    t_start, cpu_start = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed, cpu_s = time.perf_counter() - t_start, time.process_time() - cpu_start
    ms = np.array(latencies) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "runs_per_s": len(ms) / elapsed, "cpu_ms_per_run": cpu_s * 1e3 / len(ms), "runs": len(ms)}


@dataclass
class Row:
    switch: str
    workload: str
    model: str  # file name under the model folder
    feeds: dict[str, np.ndarray]
    off: dict[str, Any]  # executor settings / load keywords for each side
    on: dict[str, Any]
    concurrency: int = 1
    max_batch_size: int = 32


async def run_row(row: Row, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    sides: dict[str, list[dict]] = {"off": [], "on": []}
    cores = {}
    for side, spec in (("off", row.off), ("on", row.on)):
        load_kw = {k: spec[k] for k in ("instances", "threads") if k in spec}
        core = await start_core(folder, **{k: v for k, v in spec.items() if k not in load_kw})
        await core.load(row.model, 1, "", row.max_batch_size, **load_kw)
        await core.execute(row.model, 1, row.feeds, [])  # the pool learns its layout
        cores[side] = core
    try:
        for _ in range(args.repeats):
            for side in ("off", "on"):
                sides[side].append(await timed_run(cores[side], row.model, row.feeds, row.concurrency, args.duration_s))
    finally:
        for core in cores.values():
            await core.close()
    return summarise_row(row.switch, row.workload, row.concurrency, sides)


def summarise_row(switch: str, workload: str, concurrency: int, sides: dict[str, list[dict]]) -> dict[str, Any]:
    out: dict[str, Any] = {"switch": switch, "workload": workload, "concurrency": concurrency, "runs": sides}
    for side in ("off", "on"):
        for key in ("p50_ms", "p99_ms", "runs_per_s", "cpu_ms_per_run"):
            out[f"{side}_{key}"] = mean_ci([r[key] for r in sides[side]])
    out["speedup_p50"] = out["off_p50_ms"][0] / out["on_p50_ms"][0]
    out["speedup_p99"] = out["off_p99_ms"][0] / out["on_p99_ms"][0]
    out["speedup_throughput"] = out["on_runs_per_s"][0] / out["off_runs_per_s"][0]
    return out


async def first_request(folder: Path, model: str, feeds: dict[str, np.ndarray], warmup_runs: int) -> float:
    """ms of the first request after a fresh load (a new executor each time)."""
    core = await start_core(folder, warmup_runs=warmup_runs)
    try:
        await core.load(model, 1, "", 8)
        t0 = time.perf_counter()
        await core.execute(model, 1, feeds, [])
        return (time.perf_counter() - t0) * 1e3
    finally:
        await core.close()


async def warmup_row(folder: Path, model: str, feeds: dict[str, np.ndarray], repeats: int) -> dict[str, Any]:
    sides: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(repeats):
        for side, runs in (("off", 0), ("on", 3)):
            ms = await first_request(folder, model, feeds, runs)
            sides[side].append({"p50_ms": ms, "p99_ms": ms, "runs_per_s": 1e3 / ms, "cpu_ms_per_run": 0.0, "runs": 1})
    return summarise_row("warmup", f"{model.removesuffix('.onnx')} b8, first request after load", 1, sides)


# ---- raw ONNX Runtime: intra-op threads 1 vs every CPU (the rule's evidence) ----


def threads_floor(demo: dict, quick: bool) -> list[dict[str, Any]]:
    """Each demo model on bare sessions of 1 and of all-CPU intra-op threads, runs interleaved:
    p50 wall ms and this process's CPU ms per run."""
    import onnxruntime as ort

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    out = []
    for name, batch in (("iris", 1), ("silero_vad", 1), ("ocr_cls", 1), ("ocr_cls", 4 if quick else 32)):
        if name not in demo:
            continue
        feeds = demo[name].sample_inputs(batch)
        sessions = {}
        for threads in sorted({1, cpus}):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            sessions[threads] = ort.InferenceSession(str(demo[name].path), opts, providers=["CPUExecutionProvider"])
            sessions[threads].run(None, feeds)
        runs = (5 if quick else 20) if batch > 1 else (30 if quick else 300)
        wall: dict[int, list[float]] = {t: [] for t in sessions}
        cpu = dict.fromkeys(sessions, 0.0)
        for _ in range(runs):
            for threads, session in sessions.items():
                c0, t0 = time.process_time(), time.perf_counter()
                session.run(None, feeds)
                wall[threads].append(time.perf_counter() - t0)
                cpu[threads] += time.process_time() - c0
        out += [{"model": name, "batch": batch, "threads": t, "p50_ms": float(np.median(wall[t])) * 1e3,
                 "cpu_ms_per_run": cpu[t] * 1e3 / runs, "runs": runs} for t in sessions]
    return out


# ---- memory: two fine-tunes of one base, each case in a fresh process ----


async def memory_child(folder: Path, shared: bool) -> dict[str, Any]:
    from mlos_executor.memory import rss_bytes

    core = await start_core(folder, shared_weights=shared, warmup_runs=1)
    before = rss_bytes()
    grown = []
    for name in sorted(p.name for p in folder.glob("tune*.onnx")):
        start = rss_bytes()
        await core.load(name, 1, "", 8)
        grown.append(rss_bytes() - start)
    total = rss_bytes() - before
    saved = 0
    if core.shared_weights is not None:
        from mlos_executor.shared_weights import loaded_sharing

        saved = loaded_sharing(core.models.values()).saved_bytes
    await core.close()
    return {"shared_weights": shared, "rss_growth_bytes": total, "per_model_bytes": grown, "saved_bytes": saved}


def memory_rows(folder: Path) -> list[dict[str, Any]]:
    rows = []
    for side in ("off", "on"):
        done = subprocess.run([sys.executable, __file__, "--memory-child", side, "--model-dir", str(folder)],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"memory child ({side}) failed: {done.stderr[-2000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


# ---- the run ----


def rows_for(folder: Path, args: argparse.Namespace, demo: Callable[[int], dict[str, np.ndarray]]) -> list[Row]:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    tune = fine_tune(folder, args.base_side, 1).name
    x_tune = {"X": np.random.default_rng(1).standard_normal((8, args.base_side)).astype(np.float32)}
    wide = big_output(folder).name
    rows = [
        Row("memory_pool", "ocr_cls b8", "ocr_cls.onnx", demo(8), {"memory_pool": False}, {"memory_pool": True}),
        Row("memory_pool", "4 MiB output b1", wide, {"X": np.ones((1, 1 << 20), np.float32)},
            {"memory_pool": False}, {"memory_pool": True}),
        Row("memory_pool", "4 MiB output b8 (32 MiB)", wide, {"X": np.ones((8, 1 << 20), np.float32)},
            {"memory_pool": False}, {"memory_pool": True}),
        Row("shared_weights", f"fine-tune of a {args.base_side}^2 base b8", tune, x_tune,
            {"shared_weights": False}, {"shared_weights": True, "shared_weights_min_bytes": 1024}),
    ]
    for batch in (1, 4 if args.quick else 32):
        for concurrency in (1, 2):
            rows.append(Row("threads: rule vs all CPUs", f"ocr_cls b{batch}", "ocr_cls.onnx", demo(batch),
                            {"threads": cpus}, {}, concurrency))
    rows.append(Row("instances 1 -> 2", "ocr_cls b8", "ocr_cls.onnx", demo(8), {"instances": 1, "threads": 1},
                    {"instances": 2, "threads": 1}, concurrency=2))
    return rows


METRICS = (("p50_ms", "p50 ms", False), ("p99_ms", "p99 ms", False), ("runs_per_s", "runs/s", True),
           ("cpu_ms_per_run", "CPU ms/run", False))


def dashboard_rows(details: list[dict[str, Any]], memory: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per switch, workload and metric in onoff.py's schema (what `mlos validate` reads)."""
    rows = []
    for d in details:
        model = d["workload"] + (f", {d['concurrency']} callers" if d["concurrency"] > 1 else "")
        for key, label, higher_is_better in METRICS:
            off = [r[key] for r in d["runs"]["off"]]
            on = [r[key] for r in d["runs"]["on"]]
            if not all(off) or not all(on):
                continue  # not measured (the warm-up row has no CPU time)
            rows.append(onoff_row(d["switch"], model, label, off, on, higher_is_better))
    off_m, on_m = memory
    rows.append({"switch": "shared_weights", "model": "two fine-tunes of one base", "metric": "RSS MiB (one run)",
                 "off": {"mean": off_m["rss_growth_bytes"] / MB, "half_width": float("nan")},
                 "on": {"mean": on_m["rss_growth_bytes"] / MB, "half_width": float("nan")},
                 "speedup": {"mean": off_m["rss_growth_bytes"] / max(1, on_m["rss_growth_bytes"]),
                             "half_width": float("nan")}})
    return rows


def table(rows: list[dict[str, Any]], memory: list[dict[str, Any]], floor: list[dict[str, Any]],
          args: argparse.Namespace) -> list[str]:
    def cell(pair: tuple[float, float], digits: int = 2) -> str:
        return f"{pair[0]:.{digits}f}±{pair[1]:.{digits}f}"

    head = (f"{'switch':27}{'workload':37}{'c':>2}{'p50 ms off':>17}{'p50 ms on':>17}{'p99 ms off':>17}"
            f"{'p99 ms on':>17}{'runs/s off':>13}{'runs/s on':>13}{'CPU ms off':>17}{'CPU ms on':>17}"
            f"{'x p50':>7}{'x p99':>7}{'x tput':>7}")
    lines = [f"executor switches, off vs on: mean ± 95 % CI over {args.repeats} interleaved runs of "
             f"{args.duration_s:g} s each (speedup x = off/on latency, on/off throughput; CPU ms = this "
             "process's CPU time per run, which other processes' load does not inflate)", "", head]
    for r in rows:
        lines.append(
            f"{r['switch']:27}{r['workload']:37}{r['concurrency']:>2}{cell(r['off_p50_ms']):>17}{cell(r['on_p50_ms']):>17}"
            f"{cell(r['off_p99_ms']):>17}{cell(r['on_p99_ms']):>17}{cell(r['off_runs_per_s'], 0):>13}"
            f"{cell(r['on_runs_per_s'], 0):>13}{cell(r['off_cpu_ms_per_run']):>17}{cell(r['on_cpu_ms_per_run']):>17}"
            f"{r['speedup_p50']:>7.2f}{r['speedup_p99']:>7.2f}{r['speedup_throughput']:>7.2f}"
        )
    lines += ["", f"memory: two fine-tunes of one {args.base_side}x{args.base_side} FP32 base "
              f"({args.base_side ** 2 * 4 / MB:.0f} MiB), loaded in a fresh process each"]
    for m in memory:
        per_model = ", ".join(f"{b / MB:.1f}" for b in m["per_model_bytes"])
        lines.append(f"  shared_weights {'on ' if m['shared_weights'] else 'off'}: RSS growth "
                     f"{m['rss_growth_bytes'] / MB:7.1f} MiB (per model {per_model}), reported saved "
                     f"{m['saved_bytes'] / MB:.1f} MiB")
    off, on = memory
    lines.append(f"  on / off = {on['rss_growth_bytes'] / max(1, off['rss_growth_bytes']):.2f}")
    lines += ["", "bare ONNX Runtime sessions, intra-op threads (interleaved runs, 1 caller):"]
    lines += [f"  {f['model']:11} b{f['batch']:<3} {f['threads']} thread(s): p50 {f['p50_ms']:8.3f} ms, "
              f"CPU {f['cpu_ms_per_run']:8.3f} ms per run ({f['runs']} runs)" for f in floor]
    return lines


async def run_all(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    from mlos_cli.demo import prepare_demo_models

    demo = {m.name: m for m in prepare_demo_models(folder / "home")}
    ocr = demo["ocr_cls"]
    shutil.copyfile(ocr.path, folder / "ocr_cls.onnx")
    print("threads: bare ONNX Runtime sessions, 1 vs every CPU ...", flush=True)
    floor = threads_floor(demo, args.quick)
    rows = []
    for row in rows_for(folder, args, ocr.sample_inputs):
        print(f"{row.switch}: {row.workload}, {row.concurrency} caller(s) ...", flush=True)
        rows.append(await run_row(row, folder, args))
    print("warmup: first request after a load ...", flush=True)
    rows.append(await warmup_row(folder, "ocr_cls.onnx", ocr.sample_inputs(8), args.repeats))
    fine_tune(folder, args.base_side, 2)
    print("memory: two fine-tunes of one base, shared weights off and on ...", flush=True)
    memory = memory_rows(folder)
    return {"threads_floor": floor, "details": rows, "memory": memory, "rows": dashboard_rows(rows, memory)}


def machine() -> dict[str, Any]:
    import onnxruntime as ort

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "onnxruntime": ort.__version__, "providers": ort.get_available_providers(),
            "loadavg_at_start": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        print(json.dumps(asyncio.run(memory_child(args.model_dir, args.memory_child == "on"))))
        return 0
    out: dict[str, Any] = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()},
                           "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="mlos-bench-exec-") as tmp:
        out.update(asyncio.run(run_all(args, Path(tmp))))
    finish(out, "bench_executor", table(out["details"], out["memory"], out["threads_floor"], args), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
