"""Results of the benchmarks that feed the dashboard: the peers (bench_peers: MLOS vs MLServer vs
in-process runtimes under perf_analyzer) and optimization switches on vs off (bench_executor).

Each is the newest `<bench>-*.json` in the results folder (bench/results/ of a checkout) that
holds rows; absent results are reported as absent, never invented.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def newest(results_dir: Path, bench: str) -> tuple[Path, dict] | None:
    """The newest readable `<bench>-<UTC stamp>.json` (by its name's stamp) with a non-empty `rows`."""
    if not results_dir.is_dir():
        return None
    for path in sorted(results_dir.glob(f"{bench}-*.json"), key=lambda p: p.name.rsplit("-", 1)[-1], reverse=True):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("skipping unreadable %s: %s", path, exc)
            continue
        if isinstance(data, dict) and data.get("rows"):
            return path, data
    return None


def peers(results_dir: Path) -> dict | None:
    """bench_peers rows: server, model, concurrency, throughput_rps, p50_ms, p99_ms."""
    found = newest(results_dir, "bench_peers")
    if found is None:
        return None
    path, data = found
    keep = ("server", "model", "concurrency", "throughput_rps", "p50_ms", "p99_ms")
    rows = [{k: row.get(k) for k in keep} for row in data["rows"] if "throughput_rps" in row]
    return {"file": str(path), "started_utc": data.get("started_utc", ""), "machine": data.get("machine", {}),
            "rows": rows}


def modes(results_dir: Path) -> dict | None:
    """bench_executor rows: each switch on vs off with speedup = off / on and its interval."""
    found = newest(results_dir, "bench_executor")
    if found is None:
        return None
    path, data = found
    return {"file": str(path), "started_utc": data.get("started_utc", ""), "rows": data["rows"]}
