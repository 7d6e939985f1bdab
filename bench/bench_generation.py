"""Generation benchmark: the suite vs llama-cpp-python in process, and preemption by priority.

One run, same machine state, same GGUF file, prompt and settings (greedy, 1 llama.cpp thread):
  floor:   llama-cpp-python in this process (its token loop, Llama.generate): time to first token
           (TTFT) and tokens/s after the first;
  suite:   `mlos up`, the model registered and loaded, tritonclient's streaming gRPC client (a client
           we did not write): the same TTFT and tokens/s, through scheduler and executor;
  urgent:  the TTFT of a priority-1 request alone, and while a long priority-2 generation runs:
           with preemption and a second context, with preemption and the KV state saved/restored
           (contexts = 1), and without preemption (first come, first served: a second suite with
           MLOS_EXECUTOR_GENERATION_PREEMPTION=false);
  state:   what saving and restoring a generation's KV state costs here vs a second context's memory.
The model is written by the repo (mlos_cli/gguf_models.py) at a "bench" size where a token costs a
few milliseconds, so the per-chunk overheads are weighed against real work. Prints a table, writes
JSON to bench/results/.

    make bench-generation                       # ~2-3 min
    python bench/bench_generation.py --quick    # a smoke run (~1 min)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import queue
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from suite_process import running_suite

# Not bench_infer's helpers: they import our `inference` protos, which cannot share a process with
# tritonclient's (the same proto package).
RESULTS_DIR = Path(__file__).resolve().parent / "results"

logger = logging.getLogger("bench_generation")
PROMPT = "the quick brown fox jumps over the lazy dog and the cat sat on the mat while the " * 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--tokens", type=int, default=96, help="tokens per measured generation")
    p.add_argument("--low-tokens", type=int, default=320, help="tokens of the long low-priority generation")
    p.add_argument("--chunk-tokens", type=int, default=4)
    p.add_argument("--shape", choices=("bench", "tiny"), default="bench")
    p.add_argument("--quick", action="store_true", help="fewer repeats and tokens (a smoke run)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--home", type=Path, default=None, help="suite home (default: a temporary folder)")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.tokens, args.low_tokens = 2, 24, 96
    from mlos_cli.gguf_models import SHAPES

    args.n_ctx = min(1024, SHAPES[args.shape].context_length)  # the tokens one context holds
    return args


def build_model(folder: Path, shape: str) -> Path:
    from mlos_cli import gguf_models

    path = folder / f"llama-{shape}.gguf"
    gguf_models.write_tiny_llama(path, seed=0, shape=gguf_models.SHAPES[shape])
    return path


# ---- floor: llama-cpp-python in this process ----


def floor(path: Path, n_ctx: int, tokens: int, repeats: int) -> list[dict[str, float]]:
    """llama-cpp-python's own token loop (Llama.generate, greedy), stamped at every token: its text
    streaming (create_completion) holds pieces back and releases them in bursts, which would flatter
    its tokens/s."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=1, n_threads_batch=1, verbose=False)
    runs = []
    try:
        for _ in range(repeats + 1):  # the first is a warm-up
            llm.reset()  # else it keeps the prompt's KV from the last run and skips the prefill
            t0 = time.perf_counter()
            stamps = []
            for _token in llm.generate(llm.tokenize(PROMPT.encode()), temp=0.0, top_k=1):
                stamps.append(time.perf_counter())
                if len(stamps) == tokens:
                    break
            runs.append(_timing(t0, stamps, tokens))
    finally:
        llm.close()
    return runs[1:]


def raw_floor(path: Path, n_ctx: int, tokens: int, repeats: int) -> list[dict[str, float]]:
    """The executor's own llama.cpp calls (llama_backend.Context) in a bare greedy loop, no serving
    at all: what the suite's generations cost before any scheduling, messages or Python around them."""
    from mlos_executor.llama_backend import LlamaSettings, LlamaWeights

    weights = LlamaWeights.load(path, LlamaSettings(context_length=n_ctx, threads=1, contexts=1))
    context, runs = weights.contexts[0], []
    try:
        for _ in range(repeats + 1):
            context.clear()
            t0 = time.perf_counter()
            prompt = weights.tokenize(PROMPT.encode())
            logits, n, stamps = context.decode(prompt, 0), len(prompt), []
            while True:
                token = int(np.argmax(logits))
                stamps.append(time.perf_counter())
                if len(stamps) == tokens:
                    break
                logits, n = context.decode([token], n), n + 1
            runs.append(_timing(t0, stamps, tokens))
    finally:
        weights.close()
    return runs[1:]


def _timing(t0: float, stamps: list[float], tokens: int) -> dict[str, float]:
    """TTFT, and tokens/s after the first token: (tokens - 1) / (last piece - first piece). Each
    stamp is one streamed piece (a token in process, a chunk through the suite); the bench model
    never ends early (no end-of-text under greedy decoding), so every run makes `tokens` tokens."""
    ttft = stamps[0] - t0
    rest = stamps[-1] - stamps[0]
    return {"ttft_ms": ttft * 1e3, "pieces": len(stamps), "tokens_per_s": (tokens - 1) / rest if rest > 0 else 0.0}


# ---- the suite, through tritonclient ----


class Streamer:
    """One tritonclient gRPC stream; `generate` sends a request and returns its response times."""

    def __init__(self, addr: str) -> None:
        import tritonclient.grpc as grpcclient

        self._mod = grpcclient
        self.client = grpcclient.InferenceServerClient(addr)
        self._events: dict[str, queue.Queue] = {}
        self.client.start_stream(callback=self._on_response)

    def _on_response(self, result, error) -> None:
        now = time.perf_counter()
        if error is not None:
            rid = getattr(error, "request_id", None) or next(iter(self._events))
            self._events[rid].put((now, None, str(error)))
            return
        response = result.get_response()
        final = response.parameters["triton_final_response"].bool_param
        text = result.as_numpy("text_output")
        tokens = len(text) if text is not None else 0
        self._events[response.id].put((now, final, tokens))

    def send(self, model: str, request_id: str, tokens: int, priority: int = 0) -> queue.Queue:
        g = self._mod
        text = g.InferInput("text_input", [1], "BYTES")
        text.set_data_from_numpy(np.array([PROMPT.encode()], dtype=object))
        stream = g.InferInput("stream", [1], "BOOL")
        stream.set_data_from_numpy(np.array([True]))
        params = g.InferInput("sampling_parameters", [1], "BYTES")
        params.set_data_from_numpy(np.array([json.dumps({"max_tokens": tokens, "temperature": 0}).encode()], dtype=object))
        events: queue.Queue = queue.Queue()
        self._events[request_id] = events
        self.client.async_stream_infer(model, [text, stream, params], request_id=request_id, priority=priority)
        return events

    def close(self) -> None:
        self.client.stop_stream()
        self.client.close()


def wait(events: queue.Queue, t0: float, tokens: int, timeout_s: float = 120.0) -> dict[str, float]:
    stamps = []
    while True:
        now, final, info = events.get(timeout=timeout_s)
        if final is None:
            raise RuntimeError(f"the suite failed a generation: {info}")
        if info:
            stamps.append(now)
        if final:
            return _timing(t0, stamps, tokens)


def suite_speed(streamer: Streamer, model: str, tokens: int, repeats: int) -> list[dict[str, float]]:
    runs = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        runs.append(wait(streamer.send(model, f"s{i}", tokens), t0, tokens))
    return runs[1:]


def urgent_ttft(low: Streamer, high: Streamer, model: str, args, repeats: int) -> dict[str, Any]:
    """TTFT of a priority-1 request alone, and arriving while a long priority-2 one runs."""
    alone, during = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        alone.append(wait(high.send(model, f"a{i}", 8, priority=1), t0, 8)["ttft_ms"])
        long_events = low.send(model, f"l{i}", args.low_tokens, priority=2)
        long_events.get(timeout=60)  # its first token: it holds the model now
        t0 = time.perf_counter()
        during.append(wait(high.send(model, f"u{i}", 8, priority=1), t0, 8)["ttft_ms"])
        wait(long_events, t0, args.low_tokens)
    return {"alone_ttft_ms": statistics.median(alone), "during_ttft_ms": statistics.median(during),
            "alone_all": alone, "during_all": during}


def register(addr: str, registry_addr: str, path: Path, args) -> dict[str, str]:
    import tritonclient.grpc as grpcclient

    from mlos_registry.client import RegistryClient
    from mlos_registry.domain import ServingConfig

    names = {"ctx2": "gen-ctx2", "ctx1": "gen-ctx1"}

    async def add() -> None:
        async with RegistryClient(registry_addr) as client:
            for key, name in names.items():
                config = ServingConfig(contexts=int(key[-1]), chunk_tokens=args.chunk_tokens, threads=1,
                                       context_length=args.n_ctx)
                await client.register(name, path, config=config)

    asyncio.run(add())
    admin = grpcclient.InferenceServerClient(addr)
    for name in names.values():
        admin.load_model(name)
    admin.close()
    return names


def run_suite(path: Path, home: Path, args, preemption: bool) -> dict[str, Any]:
    env = {} if preemption else {"MLOS_EXECUTOR_GENERATION_PREEMPTION": "false"}
    home.mkdir(parents=True, exist_ok=True)
    with running_suite(home, 180.0, ("--no-demo",), env=env) as suite:
        names = register(suite.scheduler_addr, suite.ready_event["registry_addr"], path, args)
        low, high = Streamer(suite.scheduler_addr), Streamer(suite.scheduler_addr)
        try:
            out: dict[str, Any] = {}
            if preemption:
                out["speed"] = suite_speed(high, names["ctx2"], args.tokens, args.repeats)
                out["urgent_ctx2"] = urgent_ttft(low, high, names["ctx2"], args, args.repeats)
                out["urgent_ctx1"] = urgent_ttft(low, high, names["ctx1"], args, args.repeats)
            else:
                out["urgent_fifo"] = urgent_ttft(low, high, names["ctx2"], args, args.repeats)
            return out
        finally:
            low.close()
            high.close()


# ---- KV state: save/restore vs a second context ----


def state_costs(path: Path, generated: int, n_ctx: int) -> dict[str, float]:
    from mlos_executor.llama_backend import LlamaSettings, LlamaWeights
    from mlos_executor.memory import rss_bytes

    before = rss_bytes()
    weights = LlamaWeights.load(path, LlamaSettings(context_length=n_ctx, threads=1, contexts=1))
    one_context = rss_bytes() - before
    try:
        ctx = weights.contexts[0]
        tokens = weights.tokenize(PROMPT.encode())
        logits = ctx.decode(tokens, 0)
        n = len(tokens)
        for _ in range(generated):
            token = int(np.argmax(logits))
            logits = ctx.decode([token], n)
            n += 1
        saves, restores = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            state = ctx.save()
            t1 = time.perf_counter()
            ctx.restore(state)
            restores.append(time.perf_counter() - t1)
            saves.append(t1 - t0)
        before = rss_bytes()
        from mlos_executor.llama_backend import Context

        extra = Context.open(weights, 1)
        extra.restore(state)  # the second context holding a generation of the same length
        second = rss_bytes() - before
        extra.close()
    finally:
        weights.close()
    return {"tokens_in_context": n, "state_bytes": len(state), "save_ms": statistics.median(saves) * 1e3,
            "restore_ms": statistics.median(restores) * 1e3, "second_context_rss_bytes": second,
            "weights_and_first_context_rss_bytes": one_context}


# ---- report ----


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def summarise(out: dict[str, Any], args) -> list[str]:
    f, s, raw = out["floor"], out["suite"]["speed"], out["raw"]
    f_ttft, s_ttft, r_ttft = _median(f, "ttft_ms"), _median(s, "ttft_ms"), _median(raw, "ttft_ms")
    f_tps, s_tps, r_tps = _median(f, "tokens_per_s"), _median(s, "tokens_per_s"), _median(raw, "tokens_per_s")
    one_chunk_ms = args.chunk_tokens * 1e3 / f_tps if f_tps else 0.0
    lines = [
        f"model {out['model']['file']} ({out['model']['bytes'] / 2**20:.1f} MiB), prompt {out['model']['prompt_tokens']} "
        f"tokens, {args.tokens} generated, greedy, 1 thread, median of {args.repeats}",
        "",
        f"{'':34}{'TTFT ms':>10}{'tokens/s':>10}",
        f"{'llama-cpp-python in process':34}{f_ttft:>10.2f}{f_tps:>10.1f}",
        f"{'MLOS (tritonclient stream)':34}{s_ttft:>10.2f}{s_tps:>10.1f}",
        f"{'MLOS - floor / MLOS : floor':34}{s_ttft - f_ttft:>+10.2f}{s_tps / f_tps:>10.1%}"
        f"   (goals: +2 ms at most, 95 % at least)",
        f"{'bare llama.cpp loop (no serving)':34}{r_ttft:>10.2f}{r_tps:>10.1f}",
        f"{'MLOS - bare / MLOS : bare':34}{s_ttft - r_ttft:>+10.2f}{s_tps / r_tps:>10.1%}   (the cost of serving)",
        "",
        f"urgent request (priority 1, 8 tokens) TTFT, ms - one chunk is {args.chunk_tokens} tokens = {one_chunk_ms:.1f} ms:",
    ]
    rows = [("preemption, second context", out["suite"]["urgent_ctx2"]),
            ("preemption, KV saved/restored", out["suite"]["urgent_ctx1"]),
            ("no preemption (FIFO)", out["fifo"]["urgent_fifo"])]
    for label, r in rows:
        lines.append(f"  {label:32} alone {r['alone_ttft_ms']:7.2f}   during a long generation {r['during_ttft_ms']:8.2f}"
                     f"   goal <= {r['alone_ttft_ms'] + one_chunk_ms:.2f}")
    st = out["state"]
    lines += ["", f"KV state after {st['tokens_in_context']} tokens: {st['state_bytes'] / 1024:.0f} KiB, save "
              f"{st['save_ms']:.2f} ms, restore {st['restore_ms']:.2f} ms; a second context costs "
              f"{st['second_context_rss_bytes'] / 2**20:.1f} MiB resident"]
    return lines


def _machine() -> dict[str, Any]:
    import os
    import platform

    import llama_cpp

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "llama_cpp_python": llama_cpp.__version__, "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
            "loadavg_at_start": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="mlos-bench-gen-") as tmp:
        root = args.home or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        print("writing the benchmark model ...", flush=True)
        path = build_model(root, args.shape)
        import llama_cpp

        vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        prompt_tokens = len(vocab.tokenize(PROMPT.encode()))
        vocab.close()
        out: dict[str, Any] = {"machine": _machine(), "args": {k: str(v) for k, v in vars(args).items()},
                               "model": {"file": path.name, "bytes": path.stat().st_size, "prompt_tokens": prompt_tokens}}
        print("floor: llama-cpp-python in process ...", flush=True)
        out["floor"] = floor(path, args.n_ctx, args.tokens, args.repeats)
        out["raw"] = raw_floor(path, args.n_ctx, args.tokens, args.repeats)
        print("suite: mlos up, tritonclient streaming (preemption on) ...", flush=True)
        out["suite"] = run_suite(path, root / "suite-preempt", args, preemption=True)
        print("suite: preemption off (FIFO) ...", flush=True)
        out["fifo"] = run_suite(path, root / "suite-fifo", args, preemption=False)
        print("KV state save/restore vs a second context ...", flush=True)
        out["state"] = state_costs(path, args.low_tokens, args.n_ctx)
    lines = summarise(out, args)
    out["summary"] = lines
    print("\n" + "\n".join(lines))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = args.json or RESULTS_DIR / f"bench_generation-{stamp}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nJSON: {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

