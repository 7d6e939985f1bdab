#!/usr/bin/env bash
# Installs llama-cpp-python (the executor's llama.cpp backend) into a virtual environment.
#
# Usage: scripts/install_llama.sh PYTHON [VERSION]
#
# PyPI ships llama-cpp-python as source only: pip compiles llama.cpp (~190 C/C++ files, about
# 9 minutes on 2 cores). So the wheel is built once and kept in a wheelhouse,
# ${MLOS_WHEELHOUSE:-~/.cache/mlos/wheelhouse}/<key>, where the key covers the version, this CPU's
# instruction-set flags (llama.cpp compiles for the host CPU) and CMAKE_ARGS (e.g. a CUDA build:
# CMAKE_ARGS="-DGGML_CUDA=on"). Later installs, fresh clones and CI on the same machine take the
# wheel from there in seconds. While it compiles, a progress line appears every few files;
# the full build log is kept beside the wheelhouse.
set -euo pipefail
PY=${1:?usage: install_llama.sh PYTHON [VERSION]}
VERSION=${2:-0.3.36}

if "$PY" -c "import sys, llama_cpp; sys.exit(llama_cpp.__version__ != '$VERSION')" 2>/dev/null; then
  exit 0
fi

flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m)
key=$(printf '%s|%s|%s' "$VERSION" "$flags" "${CMAKE_ARGS:-}" | sha256sum | cut -c1-16)
house="${MLOS_WHEELHOUSE:-$HOME/.cache/mlos/wheelhouse}/llama-cpp-python-$VERSION-$key"
mkdir -p "$house"

if ! ls "$house"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  log="$house.build.log"
  echo "llama-cpp-python $VERSION: compiling llama.cpp from source, once (about 9 minutes on 2 cores);"
  echo "  the wheel is kept in $house, the log in $log"
  # Built beside the wheelhouse, so the wheel moves in by a rename: an install running at the
  # same time (another checkout) never sees half a wheel.
  tmp=$(mktemp -d "$house.incoming.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
  if ! "$PY" -m pip wheel -v --no-deps "llama-cpp-python==$VERSION" -w "$tmp" 2>&1 \
      | tee "$log" | "$PY" -u "$(dirname "$0")/build_progress.py"; then
    echo "llama-cpp-python build failed; the last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  mv "$tmp"/llama_cpp_python-*.whl "$house"/
fi
echo "llama-cpp-python $VERSION: installing the wheel from $house"
# --only-binary: never fall back to a silent source build (e.g. a wheel this pip will not take).
"$PY" -m pip install -q --find-links "$house" --only-binary llama-cpp-python "llama-cpp-python==$VERSION"
