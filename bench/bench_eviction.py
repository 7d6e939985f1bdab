"""Eviction under a memory budget smaller than the working set: hit rate and latency.

    .venv/bin/python bench/bench_eviction.py        # table + bench/results/eviction.json (~1 min)
    make bench-eviction                              # the same

`--models` table models (Y = W[X], `--rows` x 1024 FP32 each: their memory is their table) get
`--requests` requests, one at a time, model drawn from a Zipf distribution (exponent `--zipf`,
seeded), through the real ExecutorCore in this process: a request for a model not loaded loads
it first, as the scheduler does on "not loaded" (load + warm-up count in that request's latency).
Each budget in `--budgets-mb` (0 = none: everything stays loaded) runs `--runs` times in a fresh
core; the table shows the mean over runs and [min, max] of hit rate and p50/p99 latency, with the
evictions per run and the models held at the end. A few seconds per run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MB = 2**20


def table_file(path: Path, rows: int, seed: int) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(seed).standard_normal((rows, 1024)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["W", "X"], ["Y"])], "table",
        [helper.make_tensor_value_info("X", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 1024])], [w],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


async def one_run(files: dict[str, Path], budget_mb: float, order: list[str]) -> dict:
    from mlos_executor.budget import MemoryBudget, budget_bytes
    from mlos_executor.core import ExecutorCore
    from mlos_executor.memory_guard import MemoryGuard

    async def fetch(name: str, version: int, dest: Path) -> tuple[Path, str]:
        target = dest / f".incoming-{name}"
        shutil.copyfile(files[name], target)
        return target, hashlib.sha256(target.read_bytes()).hexdigest()

    guard = MemoryGuard(budget=MemoryBudget(budget_bytes(budget_mb, 1 << 40)))
    latencies_ms, hits = [], 0
    feeds = {"X": np.array([1, 2], np.int64)}
    with tempfile.TemporaryDirectory() as cache:
        core = ExecutorCore("bench", Path(cache), fetch, device="cpu", memory=guard, warmup_runs=1)
        for name in order:
            start = time.perf_counter()
            if (name, 1) in core.models:
                hits += 1
            else:
                await core.load(name, 1, "", 8)
            await core.execute(name, 1, feeds, [])
            latencies_ms.append((time.perf_counter() - start) * 1000)
        held = len(core.models)
        evictions = core.evictor.evictions
        await core.close()
    return {"hit_rate": hits / len(order), "p50_ms": float(np.percentile(latencies_ms, 50)),
            "p99_ms": float(np.percentile(latencies_ms, 99)), "evictions": evictions, "held_at_end": held,
            "models_requested": len(set(order))}


def spread(runs: list[dict], key: str) -> str:
    values = [r[key] for r in runs]
    fmt = "{:.2f}"
    return f"{fmt.format(statistics.mean(values))} [{fmt.format(min(values))}, {fmt.format(max(values))}]"


async def main(args: argparse.Namespace) -> list[dict]:
    rng = np.random.default_rng(args.seed)
    names = [f"m{i}" for i in range(args.models)]
    weights = 1.0 / np.arange(1, args.models + 1) ** args.zipf
    order = [str(n) for n in rng.choice(names, size=args.requests, p=weights / weights.sum())]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        files = {n: table_file(Path(tmp) / f"{n}.onnx", args.rows, i) for i, n in enumerate(names)}
        for budget_mb in args.budgets_mb:
            runs = [await one_run(files, budget_mb, order) for _ in range(args.runs)]
            results.append({"budget_mb": budget_mb, "runs": runs})
    table_mb = args.rows * 1024 * 4 / MB
    print(f"{args.models} models of {table_mb:.1f} MB (working set {args.models * table_mb:.1f} MB), "
          f"{args.requests} requests, Zipf {args.zipf}, {args.runs} run(s): mean [min, max]")
    print(f"{'BUDGET MB':>10} {'HIT RATE':>18} {'P50 MS':>18} {'P99 MS':>20} {'EVICTIONS':>10} {'HELD':>5}")
    for r in results:
        runs = r["runs"]
        print(f"{r['budget_mb'] or 'none':>10} {spread(runs, 'hit_rate'):>18} {spread(runs, 'p50_ms'):>18} "
              f"{spread(runs, 'p99_ms'):>20} {statistics.mean(x['evictions'] for x in runs):>10.1f} "
              f"{statistics.mean(x['held_at_end'] for x in runs):>5.1f}")
    return results


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", type=int, default=8)
    p.add_argument("--rows", type=int, default=1024, help="table rows of 1024 FP32 (1024 = 4 MiB)")
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--zipf", type=float, default=1.0)
    p.add_argument("--budgets-mb", type=lambda s: [float(x) for x in s.split(",")], default=[0, 32, 24])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "eviction.json")
    return p.parse_args(argv)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    found = asyncio.run(main(arguments))
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps({"settings": {k: str(v) if isinstance(v, Path) else v
                                                       for k, v in vars(arguments).items()},
                                          "results": found}, indent=1))
