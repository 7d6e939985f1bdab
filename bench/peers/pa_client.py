"""One perf_analyzer level (fixed concurrency) with CPU per request for every process involved.

perf_analyzer runs unmodified through ``bench/perf_analyzer.sh exec`` (Debian 13's loader; the
script execs, so the pid we start is perf_analyzer's). Stabilisation is off
(``--stability-percentage 999``): a level is always exactly ``windows`` windows of
``interval_ms`` after a fixed number of warm-up requests, in sync mode.

CPU per request: with ``-v`` perf_analyzer prints ``Pass [k] throughput: X infer/sec`` as each
window ends; we read /proc CPU times of every process at each such line. Requests in windows
2..n are X_k x (t_k - t_{k-1}); CPU between the line of window 1 and the last line, divided by
those requests, is the core-ms per request of each process. Window 1 is left out because its
start is not printed. Throughput and latencies are perf_analyzer's own (its CSV, all windows).
"""

from __future__ import annotations

import csv
import logging
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from peers.procstat import cpu_of

logger = logging.getLogger(__name__)

SCRIPT = Path(__file__).resolve().parent.parent / "perf_analyzer.sh"
PASS_LINE = re.compile(r"Pass \[(\d+)\] throughput: ([0-9.eE+-]+) infer/sec")
COUNT_LINE = re.compile(r"Request count: (\d+)")
OUTPUT_TAIL_LINES = 30


class PerfAnalyzerError(RuntimeError):
    """perf_analyzer failed or printed nothing we can read (message carries its output tail)."""


@dataclass
class PassMark:
    at_s: float
    throughput: float
    cpu_s: dict[str, float]


@dataclass
class LevelResult:
    """One server x model x concurrency row as perf_analyzer and /proc saw it."""

    concurrency: int
    throughput_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    request_count: int
    cpu_ms_per_request: dict[str, float]
    cpu_window_s: float
    server_side_us: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def version() -> str | None:
    """perf_analyzer's version line; None when it is not set up (bench/perf_analyzer.sh setup)."""
    done = subprocess.run([str(SCRIPT), "exec", "--version"], capture_output=True, timeout=60)
    text = (done.stdout + done.stderr).decode(errors="replace").strip()
    return text if done.returncode == 0 and "Perf Analyzer" in text else None


OUTPUT_SHM_BYTES = 16 << 20  # per output region; the detector's output is 1.6 MB


def run_level(
    addr: str,
    model: str,
    input_json: Path,
    concurrency: int,
    windows: int,
    interval_ms: int,
    procs: dict[str, list[int]],
    csv_path: Path,
    warmup_requests: int,
    shared_memory: str = "none",
) -> LevelResult:
    """Run one level; ``procs`` are the server's processes by label (perf_analyzer is added).
    ``shared_memory`` "system" puts inputs and outputs in POSIX shared memory regions."""
    cmd = [str(SCRIPT), "exec", "-m", model, "-u", addr, "-i", "grpc", "-v",
           "--input-data", str(input_json), "--concurrency-range", f"{concurrency}:{concurrency}",
           "--measurement-interval", str(interval_ms), "--stability-percentage", "999",
           "--max-trials", str(windows), "--warmup-request-count", str(warmup_requests),
           "-f", str(csv_path)]  # fmt: skip
    if shared_memory != "none":
        cmd += ["--shared-memory", shared_memory, "--output-shared-memory-size", str(OUTPUT_SHM_BYTES)]
    logger.debug("running %s", " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    watched = {**procs, "perf_analyzer": [proc.pid]}
    marks: list[PassMark] = []
    lines: list[str] = []
    count = 0
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip()
        lines.append(line)
        if match := PASS_LINE.search(line):
            marks.append(PassMark(time.monotonic(), float(match[2]), cpu_of(watched)))
        elif match := COUNT_LINE.search(line):
            count = int(match[1])
    proc.wait()
    tail = "\n".join(lines[-OUTPUT_TAIL_LINES:])
    if proc.returncode != 0 or not csv_path.is_file():
        raise PerfAnalyzerError(f"perf_analyzer exited with {proc.returncode}:\n{tail}")
    if len(marks) < 2:
        raise PerfAnalyzerError(f"perf_analyzer printed {len(marks)} window(s), need 2:\n{tail}")
    return _result(concurrency, marks, count, _read_csv(csv_path))


def _read_csv(path: Path) -> dict[str, float]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise PerfAnalyzerError(f"{path}: no rows")
    return {k: float(v) for k, v in rows[0].items() if v not in (None, "")}


def _result(concurrency: int, marks: list[PassMark], count: int, row: dict) -> LevelResult:
    requests = sum(b.throughput * (b.at_s - a.at_s) for a, b in zip(marks, marks[1:]))
    first, last = marks[0], marks[-1]
    per_request = {
        label: round((last.cpu_s[label] - first.cpu_s[label]) * 1e3 / requests, 4)
        for label in last.cpu_s
    } if requests > 0 else {}  # fmt: skip
    server_side = {k: v for k, v in row.items() if k.startswith("Server ")}
    return LevelResult(
        concurrency=concurrency,
        throughput_rps=row["Inferences/Second"],
        p50_ms=row["p50 latency"] / 1e3,
        p90_ms=row["p90 latency"] / 1e3,
        p99_ms=row["p99 latency"] / 1e3,
        request_count=count,
        cpu_ms_per_request=per_request,
        cpu_window_s=round(last.at_s - first.at_s, 3),
        server_side_us=server_side,
    )
