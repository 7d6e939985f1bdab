"""The llama-cpp-python install story: scripts/build_progress.py on recorded build logs, and
scripts/install_llama.sh on a virtual environment that already has the version (no pip, no build)."""

from __future__ import annotations

import importlib.util
import itertools
import re
import subprocess
import sys
from pathlib import Path

import llama_cpp

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
CMD = "/usr/bin/g++ -O3 -DNDEBUG -fPIC -march=native -c /tmp/pip-wheel-x/vendor/llama.cpp/src/{name}.cpp"

# pip wheel -v llama-cpp-python, shortened: pip's own lines, scikit-build-core, CMake, ninja (20 steps).
LOG_HEAD = [
    "Collecting llama-cpp-python==0.3.36",
    "  Downloading llama_cpp_python-0.3.36.tar.gz (76.6 MB)",
    "  Installing build dependencies: started",
    "  ERROR: pip's dependency resolver does not currently take into account all the packages that are installed.",
    "  *** scikit-build-core 1.1.2 using CMake 3.25.1 (wheel)",
    "  *** Configuring CMake...",
    "  -- The C compiler identification is GNU 12.2.0",
    "  -- Adding CPU backend variant ggml-cpu: -march=native",
    "  CMake Warning (dev) at CMakeLists.txt:20 (install):",
    "  *** Building project with Ninja...",
]
STEPS = [f"  [{i}/20] " + CMD.format(name=f"file{i}") for i in range(1, 21)]
LOG_TAIL = [
    "  *** Installing project into wheel...",
    "  -- Installing: /tmp/tmp7g9rj7jm/wheel/platlib/lib/libllama.so",
    "  Building wheel for llama-cpp-python (pyproject.toml): finished with status 'done'",
    "Successfully built llama-cpp-python",
]
FAILURE = [
    "  /tmp/pip-wheel-x/vendor/llama.cpp/src/llama-model.cpp:12:5: error: 'foo' was not declared in this scope",
    "  ninja: build stopped: subcommand failed.",
    "  ERROR: Failed building wheel for llama-cpp-python",
]


def _run_progress(lines: list[str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "build_progress.py")], input="\n".join(lines) + "\n",
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return [re.sub(r"\b\d+ s$", "T s", line) for line in done.stdout.splitlines()]


def test_a_whole_build_gives_phases_tenths_and_the_end() -> None:
    assert _run_progress(LOG_HEAD + STEPS + LOG_TAIL) == [
        "  llama.cpp build: downloading the source",
        "  llama.cpp build: configuring CMake",
        *(f"  llama.cpp build: {n}/20 compiled, T s" for n in (1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20)),
        "  llama.cpp build: packing the wheel",
        "  llama.cpp build: all 20 build steps done in T s",
    ]


def test_a_failed_build_shows_its_errors_and_where_it_stopped() -> None:
    assert _run_progress(LOG_HEAD + STEPS[:7] + FAILURE) == [
        "  llama.cpp build: downloading the source",
        "  llama.cpp build: configuring CMake",
        *(f"  llama.cpp build: {n}/20 compiled, T s" for n in (1, 2, 4, 6)),
        "  /tmp/pip-wheel-x/vendor/llama.cpp/src/llama-model.cpp:12:5: error: 'foo' was not declared in this scope",
        "  ninja: build stopped: subcommand failed.",
        "  ERROR: Failed building wheel for llama-cpp-python",
        "  llama.cpp build: build output ended at 7/20 after T s",
    ]


def test_no_build_at_all_says_so() -> None:
    assert _run_progress(["ERROR: Could not find a version that satisfies the requirement llama-cpp-python==9.9"]) == [
        "  ERROR: Could not find a version that satisfies the requirement llama-cpp-python==9.9",
        "  llama.cpp build: build output ended at 0/? after T s",
    ]


def test_elapsed_seconds_come_from_the_clock() -> None:
    spec = importlib.util.spec_from_file_location("build_progress", SCRIPTS / "build_progress.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ticks = itertools.count(100.0, 30.0)  # every reading of the clock is 30 s after the last
    lines = list(module.progress(STEPS[:2], clock=lambda: next(ticks)))
    assert lines == [
        "  llama.cpp build: 1/20 compiled, 30 s",
        "  llama.cpp build: 2/20 compiled, 60 s",
        "  llama.cpp build: build output ended at 2/20 after 90 s",
    ]


def test_install_with_the_version_present_returns_at_once_without_pip() -> None:
    done = subprocess.run(
        ["bash", str(SCRIPTS / "install_llama.sh"), sys.executable, llama_cpp.__version__],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""  # the wheelhouse and pip paths both print what they do


def test_install_without_a_python_prints_its_usage() -> None:
    done = subprocess.run(["bash", str(SCRIPTS / "install_llama.sh")], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "usage: install_llama.sh PYTHON [VERSION]" in done.stderr
