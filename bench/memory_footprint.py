"""Memory features of the demo models (and one weight-heavy model built here) vs the resident memory
an executor's load + warm-up really took.

    .venv/bin/python bench/memory_footprint.py            # table + bench/results/memory_footprint.json

Each model loads in a fresh process (so no load reuses another's freed heap), through the real
ExecutorCore.load: the memory facts and the footprint the `memory` kind's documented prior
predicts (kinds.SPECS["memory"].prior), then the RSS growth measured after warm-up at batch 1
and at the model's max batch size (the MemorySamples the executor sends). A few seconds in all.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MB = 2**20


def weights_model(path: Path, side: int = 2048) -> Path:
    """Y = X @ W, W float32 [side, side] (16 MiB at 2048): a model whose weight is its memory."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((side, side)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])], "weights",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", side])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", side])], [w],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


async def measure_one(path: Path, max_batch_size: int, first: Path | None) -> dict:
    """In this (fresh) process: one real load through ExecutorCore, its facts, prediction and
    samples; after loading `first` when given (ONNX Runtime's one-time costs paid already)."""
    from mlos_executor.budget import MemoryBudget
    from mlos_executor.core import ExecutorCore
    from mlos_executor.memory import memory_facts, memory_row, rss_bytes
    from mlos_executor.memory_guard import MemoryGuard, MemoryMeasurement

    samples: list[MemoryMeasurement] = []
    guard = MemoryGuard(budget=MemoryBudget(1 << 50), on_sample=samples.append)  # a budget: so it predicts

    async def fetch(name: str, version: int, dest: Path) -> tuple[Path, str]:
        target = dest / f".incoming-{name}"
        shutil.copyfile(first if name == "first" and first is not None else path, target)
        return target, hashlib.sha256(target.read_bytes()).hexdigest()

    with tempfile.TemporaryDirectory() as cache:
        core = ExecutorCore("bench", Path(cache), fetch, device="cpu", memory=guard)
        if first is not None:
            await core.load("first", 1, "", 8)
            samples.clear()
        rss_start = rss_bytes()
        loaded = await core.load(path.stem, 1, "", max_batch_size)
        await core.close()
    facts = memory_facts(path)
    return {
        "file": path.name, "max_batch_size": max_batch_size, "rss_before_mb": rss_start / MB,
        "facts": dataclasses.asdict(facts), "row": memory_row(facts, 1),
        "warmup": [dataclasses.asdict(t) for t in loaded.warmup],
        "predicted_mb": loaded.memory.predicted_bytes / MB if loaded.memory else 0,
        "measured_mb": loaded.memory.bytes / MB if loaded.memory else 0,
        "samples": [{"batch_size": s.batch_size, "rss_delta_mb": s.rss_delta_bytes / MB,
                     "row": memory_row(s.facts, s.batch_size)} for s in samples],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # child: measure this file
    p.add_argument("--max-batch-size", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--first", type=Path, help=argparse.SUPPRESS)  # child: load this model before
    p.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "memory_footprint.json")
    args = p.parse_args()
    if args.one is not None:
        print(json.dumps(asyncio.run(measure_one(args.one, args.max_batch_size, args.first))))
        return

    from mlos_cli.demo import prepare_demo_models
    from mlos_predictor.kinds import SPECS

    home = Path(tempfile.mkdtemp(prefix="mlos-memory-"))
    demos = {m.name: m.path for m in prepare_demo_models(home)}
    runs = [("iris", demos["iris"], 8), ("silero_vad", demos["silero_vad"], 0), ("ocr_cls", demos["ocr_cls"], 8),
            ("weights_16mb", weights_model(home / "weights_16mb.onnx"), 8)]
    results = []
    print(f"{'MODEL':<13} {'FILE MB':>8} {'PARAMS':>9} {'NODES':>6} {'IN KB':>7} {'OUT KB':>7} {'BATCH':>5} "
          f"{'PRIOR MB':>9} {'RSS DELTA MB 1st / 2nd load':>28}")
    for name, path, max_batch in runs:
        cmd = [sys.executable, __file__, "--one", str(path), "--max-batch-size", str(max_batch)]
        cold, warm = (json.loads(subprocess.run(c, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
                      for c in (cmd, [*cmd, "--first", str(demos["iris"])]))
        results.append({"model": name, "first_load": cold, "after_another_load": warm})
        # per warm-up batch size; the load alone when no warm-up ran (e.g. the model fails on zeros)
        rows = [(s["row"], s["rss_delta_mb"], w["rss_delta_mb"], str(s["batch_size"]))
                for s, w in zip(cold["samples"], warm["samples"])]
        rows = rows or [(cold["row"], cold["measured_mb"], warm["measured_mb"], "load")]
        for row, cold_mb, warm_mb, batch in rows:
            file_mb, params_m, nodes, in_kb, out_kb, _ = row
            prior = float(SPECS["memory"].prior(np.array([row]))[0])
            print(f"{name:<13} {file_mb:>8.2f} {params_m * 1e6:>9.0f} {nodes:>6.0f} {in_kb:>7.2f} {out_kb:>7.2f} "
                  f"{batch:>5} {prior:>9.1f} {cold_mb:>13.1f} / {warm_mb:>12.1f}")
    shutil.rmtree(home, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
