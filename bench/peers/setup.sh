#!/usr/bin/env bash
# Set-up for bench/bench_peers.py; idempotent (a second run only checks, in about a second).
#   - MLServer 1.7.1 in its own virtualenv, bench/.peers/mlserver (never the project's .venv),
#     from bench/peers/requirements-mlserver.txt (~1.5 min the first time; PyPI);
#   - perf_analyzer via bench/perf_analyzer.sh setup (~20 s; PyPI and Debian's mirror).
# PYTHON picks the interpreter for the MLServer venv (default python3).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/../.peers/mlserver"
req="$here/requirements-mlserver.txt"

if ! cmp -s "$req" "$venv/.installed-requirements.txt" 2>/dev/null; then
  echo "bench-peers: installing MLServer into $venv" >&2
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r "$req"
  cp "$req" "$venv/.installed-requirements.txt"
fi
if ! "$here/../perf_analyzer.sh" exec --version >/dev/null 2>&1; then
  echo "bench-peers: setting up perf_analyzer in bench/.perf_analyzer" >&2
  "$here/../perf_analyzer.sh" setup
fi
