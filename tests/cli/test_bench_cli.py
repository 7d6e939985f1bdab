"""`mlos bench slo` runs bench/bench_slo.py of this checkout and passes every option on."""

from __future__ import annotations

import subprocess
import sys


def mlos(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlos_cli", *args], capture_output=True, text=True, timeout=60)


def test_bench_slo_passes_options_to_the_benchmark() -> None:
    done = mlos("bench", "slo", "--help")
    assert done.returncode == 0, done.stderr
    assert "bench_slo.py" in done.stdout and "--policies" in done.stdout and "--quick" in done.stdout


def test_bench_slo_bad_option_is_the_benchmarks_usage_error() -> None:
    done = mlos("bench", "slo", "--mode", "nope")
    assert done.returncode == 2 and "invalid choice: 'nope'" in done.stderr and "Traceback" not in done.stderr


def test_other_commands_still_refuse_unknown_options() -> None:
    done = mlos("models", "list", "--bogus")
    assert done.returncode == 2 and "unrecognized arguments: --bogus" in done.stderr
