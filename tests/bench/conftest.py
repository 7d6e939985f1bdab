"""Fixtures for the `make bench-peers` harness tests."""

from __future__ import annotations

import subprocess

import pytest
from peers_testkit import PERF_ANALYZER


@pytest.fixture(scope="session")
def perf_analyzer_ready() -> None:
    """perf_analyzer set up (``bench/perf_analyzer.sh setup`` on first use: PyPI + Debian's
    mirror, ~20 s); skipped with the reason when that is not possible here."""
    if subprocess.run([PERF_ANALYZER, "exec", "--version"], capture_output=True).returncode == 0:
        return
    setup = subprocess.run([PERF_ANALYZER, "setup"], capture_output=True, text=True, timeout=300)
    if setup.returncode != 0:
        pytest.skip("perf_analyzer cannot be set up here (needs PyPI and deb.debian.org): "
                    + setup.stderr[-500:])  # fmt: skip
