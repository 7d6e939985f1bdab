"""Results of the benchmarks that feed the dashboard: the peers (bench_peers: MLOS vs MLServer vs
in-process runtimes under perf_analyzer) and optimization switches on vs off (bench_executor and
bench_modes).

Each is the newest `<bench>-*.json` in the results folder (bench/results/ of a checkout) that
holds rows; absent results are reported as absent, never invented.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _runs(results_dir: Path, bench: str) -> list[tuple[Path, dict]]:
    """Readable `<bench>-<UTC stamp>.json` files with a non-empty `rows`, newest (by stamp) first."""
    if not results_dir.is_dir():
        return []
    runs = []
    for path in sorted(results_dir.glob(f"{bench}-*.json"), key=lambda p: p.name.rsplit("-", 1)[-1], reverse=True):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("skipping unreadable %s: %s", path, exc)
            continue
        if isinstance(data, dict) and data.get("rows"):
            runs.append((path, data))
    return runs


def newest(results_dir: Path, bench: str) -> tuple[Path, dict] | None:
    runs = _runs(results_dir, bench)
    return runs[0] if runs else None


def ratios(rows: list[dict], ours: str = "mlos") -> list[dict]:
    """Per model and callers, our throughput over each other server's, from one run's rows."""
    table: dict[tuple[str, int], dict[str, float]] = {}
    for r in rows:
        table.setdefault((r["model"], r["concurrency"]), {})[r["server"]] = r["throughput_rps"]
    out = []
    for (model, callers), by_server in sorted(table.items()):
        if ours not in by_server:
            continue
        for server, rps in sorted(by_server.items()):
            if server != ours and rps:
                out.append({"model": model, "concurrency": callers, "versus": server, "ratio": by_server[ours] / rps})
    return out


def peers(results_dir: Path) -> dict | None:
    """bench_peers rows (server, model, concurrency, throughput_rps, p50_ms, p99_ms) of ONE run: the
    one comparing the most servers, the newest among equals (ratios only mean something within a
    run), and MLOS's throughput over each peer's."""
    runs = _runs(results_dir, "bench_peers")
    if not runs:
        return None
    path, data = max(runs, key=lambda run: (len({r.get("server") for r in run[1]["rows"]}), run[0].name))
    keep = ("server", "model", "concurrency", "throughput_rps", "p50_ms", "p99_ms")
    rows = [{k: row.get(k) for k in keep} for row in data["rows"] if "throughput_rps" in row]
    return {"file": str(path), "started_utc": data.get("started_utc", ""), "machine": data.get("machine", {}),
            "rows": rows, "ratios": ratios(rows)}


MODES_BENCHES = ("bench_executor", "bench_modes")  # the executor's switches, then the suite's


def modes(results_dir: Path) -> dict | None:
    """Each switch on vs off (speedup = off / on and its interval): the rows of the newest
    bench_executor run and of the newest bench_modes run, in that order. Every row keeps the file
    it came from (`source`); `sources` lists each file with its start time. A row may be "n/a"
    (`status`, `note`, no numbers): a switch this host cannot measure."""
    sources, rows = [], []
    for bench in MODES_BENCHES:
        found = newest(results_dir, bench)
        if found is None:
            continue
        path, data = found
        sources.append({"bench": bench, "file": str(path), "started_utc": data.get("started_utc", "")})
        rows += [{**row, "source": str(path)} for row in data["rows"] if isinstance(row, dict)]
    if not rows:
        return None
    return {"sources": sources, "rows": rows}
