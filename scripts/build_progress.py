"""Turns a verbose pip/CMake build log on stdin into a few progress lines (see install_llama.sh).

Contract, one output line each (two-space indent, flushed at once):
- the phases before the compile ("downloading the source", "configuring CMake"), once each;
- ninja's "[N/M] command" lines, where N of M build steps are done: "N/M compiled, T s" for the
  first one and whenever the build has moved on by a tenth of M;
- any line that looks like a compiler, CMake, ninja or pip failure, as it comes (cut to 300 chars);
- "packing the wheel" when the install step starts;
- at the end of input: "all M build steps done in T s", or "build output ended at N/M after T s"
  when the log stops short (a failed or interrupted build; install_llama.sh then shows the log's tail).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator

STEP = re.compile(r"\[(\d+)/(\d+)\]")
ERROR = re.compile(r"(error:|CMake Error|ninja: build stopped|ERROR: (Failed|Could not|No matching))")
PHASES = (
    (re.compile(r"Downloading llama_cpp_python-\S+\.tar\.gz"), "downloading the source"),
    (re.compile(r"\*\*\* Configuring CMake"), "configuring CMake"),
    (re.compile(r"\*\*\* Installing project into wheel"), "packing the wheel"),
)
PREFIX = "  llama.cpp build: "


def progress(lines: Iterable[str], clock: Callable[[], float] = time.monotonic) -> Iterator[str]:
    """The progress lines for a build log, as they become known (see the module docstring)."""
    start = clock()
    shown_tenth, done, total = -1, 0, 0
    phases_seen: set[str] = set()
    for line in lines:
        match = STEP.search(line)
        if match:
            done, total = int(match.group(1)), int(match.group(2))
            tenth = done * 10 // max(total, 1)
            if tenth > shown_tenth:
                shown_tenth = tenth
                yield f"{PREFIX}{done}/{total} compiled, {clock() - start:.0f} s"
            continue
        if ERROR.search(line):
            yield "  " + line.strip()[:300]
            continue
        for pattern, phase in PHASES:
            if phase not in phases_seen and pattern.search(line):
                phases_seen.add(phase)
                yield PREFIX + phase
    elapsed = clock() - start
    if total and done == total:
        yield f"{PREFIX}all {total} build steps done in {elapsed:.0f} s"
    else:
        yield f"{PREFIX}build output ended at {done}/{total or '?'} after {elapsed:.0f} s"


def main() -> None:
    for line in progress(sys.stdin):
        print(line, flush=True)


if __name__ == "__main__":
    main()
