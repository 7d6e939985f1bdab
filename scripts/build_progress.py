"""Turns a verbose pip/CMake build log on stdin into a few progress lines (see install_llama.sh).

Ninja prints "[N/M] compiler command" per file: we print "N/M files, elapsed" when the build has
moved on by a tenth, and any line that looks like a compiler or CMake error, as it comes.
"""

from __future__ import annotations

import re
import sys
import time

STEP = re.compile(r"\[(\d+)/(\d+)\]")
ERROR = re.compile(r"(error:|CMake Error|ninja: build stopped)")


def main() -> None:
    start = time.monotonic()
    shown = -1
    for line in sys.stdin:
        match = STEP.search(line)
        if match:
            done, total = int(match.group(1)), int(match.group(2))
            tenth = done * 10 // max(total, 1)
            if tenth > shown:
                shown = tenth
                print(f"  llama.cpp build: {done}/{total} files compiled, {time.monotonic() - start:.0f} s", flush=True)
        elif ERROR.search(line):
            print("  " + line.rstrip()[:300], flush=True)
    print(f"  llama.cpp build finished in {time.monotonic() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
