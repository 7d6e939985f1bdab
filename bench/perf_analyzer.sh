#!/usr/bin/env bash
# Triton's perf_analyzer (C++ load client) against any Open Inference Protocol gRPC server.
#
#   bench/perf_analyzer.sh setup                       # once: ~20 s, everything under bench/.perf_analyzer
#   bench/perf_analyzer.sh ADDR MODEL SHAPE [CONC...]  # e.g. 127.0.0.1:8001 ocr_cls x:3,48,192 1 8 32
#   bench/perf_analyzer.sh exec [PERF_ANALYZER ARGS...] # the binary itself, same pid (bench_peers.py)
#
# The PyPI wheel's binary needs glibc 2.38 (Debian 12 has 2.36), so it runs through Debian 13's
# loader and libraries, unpacked into a private folder: nothing is installed system-wide.
# SHAPE excludes the batch dimension when the model batches (perf_analyzer sends -b 1).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pa="$here/.perf_analyzer"
py="${PYTHON:-$here/../.venv/bin/python}"

setup() {
  mkdir -p "$pa/dl" "$pa/apt/lists/partial" "$pa/apt/cache/archives/partial" "$pa/glibc"
  "$py" -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_38_x86_64 \
    perf-analyzer==2.60.0 -d "$pa/dl"
  echo "deb http://deb.debian.org/debian trixie main" > "$pa/sources.list"
  local o=(-o "Dir::Etc::SourceList=$pa/sources.list" -o Dir::Etc::SourceParts=/dev/null
           -o "Dir::State::Lists=$pa/apt/lists" -o "Dir::Cache=$pa/apt/cache")
  apt-get "${o[@]}" update -qq
  (cd "$pa/dl" && apt-get "${o[@]}" download libc6 libstdc++6 libgcc-s1)
  for deb in "$pa"/dl/*.deb; do dpkg-deb -x "$deb" "$pa/root"; done
  cp -a "$pa"/root/usr/lib/x86_64-linux-gnu/. "$pa/glibc/"
  (cd "$pa" && "$py" -m zipfile -e dl/perf_analyzer-2.60.0-*.whl whl)
  chmod +x "$pa/whl/perf_analyzer/bin/perf_analyzer"
  run --version
}

run() {  # exec_=exec replaces this shell with the binary (same pid)
  ${exec_:-} "$pa/glibc/ld-linux-x86-64.so.2" --library-path "$pa/glibc:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu" \
    "$pa/whl/perf_analyzer/bin/perf_analyzer" "$@"
}

if [[ "${1:-}" == "setup" ]]; then setup; exit; fi
if [[ "${1:-}" == "exec" ]]; then
  [[ -x "$pa/whl/perf_analyzer/bin/perf_analyzer" ]] ||
    { echo "perf_analyzer is not set up: run bench/perf_analyzer.sh setup" >&2; exit 3; }
  shift; exec_=exec run "$@"
fi
[[ $# -ge 3 ]] || { sed -n '2,10p' "$0"; exit 2; }
[[ -x "$pa/whl/perf_analyzer/bin/perf_analyzer" ]] || setup
addr=$1 model=$2 shape=$3; shift 3
mkdir -p "$here/results"
for c in "${@:-1 8 32}"; do
  # Fixed 3 x 5 s windows after warm-up: the default stability rule never converges on 2 cores.
  run -m "$model" -u "$addr" -i grpc --shape "$shape" -b 1 --concurrency-range "$c:$c" \
    --measurement-interval 5000 --stability-percentage 999 --max-trials 3 \
    --warmup-request-count $((50 > 10 * c ? 50 : 10 * c)) \
    -f "$here/results/perf_analyzer-$model-c$c-$(date -u +%Y%m%dT%H%M%SZ).csv"
done
