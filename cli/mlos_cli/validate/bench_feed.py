"""Results of the benchmarks that feed the dashboard: the peers (bench_peers: MLOS vs MLServer vs
in-process runtimes under perf_analyzer), optimization switches on vs off (bench_executor and
bench_modes) and generation (bench_generation: MLOS vs llama-cpp-python in process, and
urgent-request preemption).

Each is the newest `<bench>-*.json` in the results folder (bench/results/ of a checkout) that
holds its results; absent results are reported as absent, never invented. A section this checkout
has not measured may come from the recorded runs committed in bench/reference/, and then says so
(`recorded`: the folder), so a fresh clone's page is complete but never passes a recording off as
its own measurement.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _runs(results_dir: Path, bench: str, needed: tuple[str, ...] = ("rows",)) -> list[tuple[Path, dict]]:
    """Readable `<bench>-<UTC stamp>.json` files with every `needed` key non-empty, newest (by stamp) first."""
    if not results_dir.is_dir():
        return []
    runs = []
    for path in sorted(results_dir.glob(f"{bench}-*.json"), key=lambda p: p.name.rsplit("-", 1)[-1], reverse=True):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("skipping unreadable %s: %s", path, exc)
            continue
        if isinstance(data, dict) and all(data.get(key) for key in needed):
            runs.append((path, data))
    return runs


def measured_or_recorded(feed: Callable[[Path], dict | None], results_dir: Path, reference_dir: Path) -> dict | None:
    """`feed(results_dir)`, else `feed(reference_dir)` with `recorded` set to that folder."""
    found = feed(results_dir)
    if found is not None or reference_dir == results_dir:
        return found
    recorded = feed(reference_dir)
    return None if recorded is None else {**recorded, "recorded": str(reference_dir)}


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
    formats = {name: m.get("format", "onnx") for name, m in data.get("models", {}).items()}
    return {"file": str(path), "started_utc": data.get("started_utc", ""), "machine": data.get("machine", {}),
            "rows": rows, "ratios": ratios(rows), "formats": formats, "skipped": data.get("skipped", [])}


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


GENERATION_SPEED = (("floor", "llama-cpp-python in process"), ("raw", "bare llama.cpp loop (no serving)"))
GENERATION_URGENT = (("suite", "urgent_ctx2", "preemption, second context"),
                     ("suite", "urgent_ctx1", "preemption, KV state saved/restored"),
                     ("fifo", "urgent_fifo", "no preemption (first come, first served)"))


def _medians(runs: list[dict]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in ("ttft_ms", "tokens_per_s")}


def generation(results_dir: Path) -> dict | None:
    """The newest bench_generation run: MLOS (streaming through the suite) vs llama-cpp-python in
    process on the same GGUF file and prompt, medians of its repeats, with MLOS's TTFT and tokens/s
    over each in-process runner's; and the TTFT of an urgent request alone and during a long
    generation in each preemption mode. None when there is no usable run."""
    for path, data in _runs(results_dir, "bench_generation", needed=("floor", "suite")):
        try:
            ours = _medians(data["suite"]["speed"])
            speed: list[dict[str, Any]] = [{"runner": label, **_medians(data[key])}
                                           for key, label in GENERATION_SPEED if data.get(key)]
            urgent: list[dict[str, Any]] = [{"mode": label, "alone_ttft_ms": data[part][key]["alone_ttft_ms"],
                                             "during_ttft_ms": data[part][key]["during_ttft_ms"]}
                                            for part, key, label in GENERATION_URGENT if key in data.get(part, {})]
        except (KeyError, TypeError, statistics.StatisticsError) as exc:
            log.warning("skipping %s: not a bench_generation result (%s)", path, exc)
            continue
        for row in speed:
            row["mlos_ttft_over"] = ours["ttft_ms"] / row["ttft_ms"] if row["ttft_ms"] else None
            row["mlos_tokens_per_s_over"] = ours["tokens_per_s"] / row["tokens_per_s"] if row["tokens_per_s"] else None
        for row in urgent:
            row["during_over_alone"] = row["during_ttft_ms"] / row["alone_ttft_ms"] if row["alone_ttft_ms"] else None
        return {"file": str(path), "stamp": path.stem.rsplit("-", 1)[-1], "model": data.get("model", {}),
                "args": data.get("args", {}), "machine": data.get("machine", {}),
                "mlos": {"runner": "MLOS (tritonclient streaming gRPC)", **ours}, "speed": speed, "urgent": urgent}
    return None
