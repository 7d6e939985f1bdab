"""The predictor's result-cache hit rates per kind while the suite serves traffic.

Starts `mlos up` (ephemeral ports), sends iris requests from several named clients
(`x-mlos-client`) for `--duration` seconds, then reads the predictor's CacheStats and
GetMetrics: every prediction counted there was asked by the suite itself (the scheduler's
failure/threat score polls, the executors' prefetch forecasts and memory checks). Prints a
table next to the seed daemon's expected hit rates (../shared/seeds/003) and writes JSON.

    python bench/predictor_cache.py                  # ~45 s
    python bench/predictor_cache.py --duration 10 --clients 2
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from bench_infer import RESULTS_DIR, machine_info
from loadgen import build_request, open_channel
from suite_process import running_suite

from mlos.inference import grpc_service_pb2_grpc as pbg
from mlos_predictor.client import PredictorClient

SEED_EXPECTED = {"workload": "70-80 %", "threat": "85-90 %", "failure": "90-95 %", "memory": "60-70 %", "latency": "-"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of traffic (default 30)")
    p.add_argument("--clients", type=int, default=4, help="named clients sending requests (default 4)")
    p.add_argument("--concurrency", type=int, default=2, help="requests in flight per client (default 2)")
    p.add_argument("--startup-timeout", type=float, default=180.0)
    p.add_argument("--json", type=Path, default=None, help="where to write the JSON (default bench/results/)")
    return p.parse_args(argv)


REFUSED_PAUSE_S = 0.2  # a rate-limited client pauses, then tries again (the refusal lasts ~2 s)


async def drive(addr: str, clients: int, concurrency: int, duration_s: float) -> tuple[int, int]:
    """Closed-loop iris requests from `clients` named clients; returns (answered, refused). A
    burst from one named client may get it rate-limited by the threat model (RESOURCE_EXHAUSTED):
    that is the suite working, so it is counted and the client carries on; any other error ends
    the run."""
    request = build_request("iris", {"X": np.random.default_rng(0).random((1, 4), dtype=np.float32)})
    done = refused = 0
    stop_at = time.monotonic() + duration_s
    async with open_channel(addr) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)

        async def worker(client: str) -> None:
            nonlocal done, refused
            while time.monotonic() < stop_at:
                try:
                    await stub.ModelInfer(request, metadata=(("x-mlos-client", client),), timeout=10)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or "rate-limited" not in (exc.details() or ""):
                        raise
                    refused += 1
                    await asyncio.sleep(REFUSED_PAUSE_S)
                    continue
                done += 1

        await asyncio.gather(*(worker(f"bench-{c}") for c in range(clients) for _ in range(concurrency)))
    return done, refused


async def read_predictor(addr: str) -> dict[str, Any]:
    async with PredictorClient(addr) as client:
        caches = await client.cache_stats()
        metrics = {m.kind: m for m in await client.metrics()}
    out: dict[str, Any] = {}
    for c in caches:
        m = metrics.get(c.kind)
        out[c.kind] = {
            "hits": c.hits, "misses": c.misses, "hit_rate": c.hit_rate, "ttl_ms": c.ttl_ms, "size": c.size,
            "predictions": m.count if m else 0, "p50_ms": m.p50_ms if m else 0.0, "p99_ms": m.p99_ms if m else 0.0,
            "seed_expected": SEED_EXPECTED.get(c.kind, "-"),
        }  # fmt: skip
    return out


def table(kinds: dict[str, Any]) -> str:
    lines = [f"{'kind':<10} {'TTL ms':>7} {'asked':>7} {'hits':>6} {'misses':>7} {'hit rate':>9} {'seed expected':>14}"]
    for kind, k in kinds.items():
        asked = k["hits"] + k["misses"]
        rate = f"{k['hit_rate'] * 100:.0f} %" if asked else "-"
        lines.append(f"{kind:<10} {k['ttl_ms']:>7g} {asked:>7} {k['hits']:>6} {k['misses']:>7} {rate:>9} "
                     f"{k['seed_expected']:>14}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="mlos-cache-bench-") as home:
        with running_suite(Path(home), args.startup_timeout, ("--predictor-http-port", "-1")) as suite:
            answered, refused = asyncio.run(drive(suite.scheduler_addr, args.clients, args.concurrency, args.duration))
            kinds = asyncio.run(read_predictor(suite.ready_event["predictor_addr"]))
    print(f"{answered} requests from {args.clients} clients in {args.duration:g} s ({refused} refused: a client "
          "rate-limited by the threat model); predictions the suite asked for:")
    print(table(kinds))
    payload = {"benchmark": "predictor_cache", "started_utc": started.isoformat(), "machine": machine_info(),
               "duration_s": args.duration, "clients": args.clients, "requests": answered,
               "refused_rate_limited": refused, "kinds": kinds}  # fmt: skip
    path = args.json or RESULTS_DIR / f"predictor_cache-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
