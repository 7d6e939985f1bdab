"""What authentication and TLS cost per RPC: one real grpc.aio server built by build_server (the
services' interceptor chain), a tiny unary method (ServerLive, answered with an empty message),
and `--callers` concurrent callers on loopback for `--duration` seconds in each mode:

    plain       no auth, plaintext (the default)
    auth        bearer token checked (mlos_common.auth) on every call
    mtls        mutual TLS, no tokens
    mtls+auth   both

Plus the token check alone, in-process (TokenBook.principal). Prints a table and writes JSON to
bench/results/auth.json. Seconds, not minutes: `make bench-auth` (BENCH_AUTH_ARGS='--duration 1').
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import timeit
from pathlib import Path

import grpc
from grpc import aio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # tls_testkit: the tests' CA and certificates (cryptography)

from tls_testkit import make_ca, make_leaf, make_tokens  # noqa: E402

from mlos_common.auth import TokenBook  # noqa: E402
from mlos_common.bootstrap import GrpcService, ServerParts, build_server, client_channel  # noqa: E402
from mlos_common.config import ServiceSettings  # noqa: E402

SERVICE = "inference.GRPCInferenceService"
METHOD = f"/{SERVICE}/ServerLive"
RESULTS = REPO / "bench" / "results" / "auth.json"


def _service() -> GrpcService:
    async def live(request: bytes, context: aio.ServicerContext) -> bytes:
        return b""

    handler = grpc.method_handlers_generic_handler(SERVICE, {"ServerLive": grpc.unary_unary_rpc_method_handler(live)})
    return GrpcService(SERVICE, lambda server: server.add_generic_rpc_handlers((handler,)))


async def _mode(server_settings: ServiceSettings, client_settings: ServiceSettings, callers: int, duration_s: float) -> dict:
    server, port = build_server(server_settings, [_service()], ServerParts())
    await server.start()
    calls = 0
    try:
        async with client_channel(f"127.0.0.1:{port}", client_settings) as channel:
            call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
            await call(b"", timeout=10)  # connect (and handshake) before timing
            stop = time.perf_counter() + duration_s

            async def caller() -> int:
                done = 0
                while time.perf_counter() < stop:
                    await call(b"", timeout=10)
                    done += 1
                return done

            start = time.perf_counter()
            calls = sum(await asyncio.gather(*(caller() for _ in range(callers))))
            elapsed = time.perf_counter() - start
    finally:
        await server.stop(None)
    return {"calls": calls, "calls_per_s": calls / elapsed, "us_per_call": elapsed / calls * 1e6 * callers}


async def run(args: argparse.Namespace, folder: Path) -> dict:
    ca = make_ca(folder, "bench")
    leaf = make_leaf(folder, ca, "server")
    tokens = make_tokens(folder)
    tls = dict(tls_cert=leaf.cert_path, tls_key=leaf.key_path, tls_ca=ca.cert_path)
    auth = dict(auth_tokens_file=tokens.file)
    modes = {
        "plain": ({}, {}),
        "auth": (auth, {"token": tokens["infer"]}),
        "mtls": (tls, tls),
        "mtls+auth": ({**tls, **auth}, {**tls, "token": tokens["infer"]}),
    }
    results = {}
    for name, (server, client) in modes.items():
        results[name] = await _mode(
            ServiceSettings(grpc_port=0, **server), ServiceSettings(**client), args.callers, args.duration
        )
    book = TokenBook.load(tokens.file)
    header = [tokens.header("infer")]
    rounds = 20_000
    check_us = timeit.timeit(lambda: book.principal(header), number=rounds) / rounds * 1e6
    return {"callers": args.callers, "duration_s": args.duration, "modes": results, "token_check_us": check_us,
            "cpus": len(os.sched_getaffinity(0)), "load_1m": os.getloadavg()[0]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per mode (3)")
    parser.add_argument("--callers", type=int, default=8, help="concurrent callers (8)")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"where the JSON goes ({RESULTS})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result = asyncio.run(run(args, Path(folder)))
    plain = result["modes"]["plain"]["calls_per_s"]
    print(f"{'mode':<10} {'calls':>8} {'calls/s':>9} {'us/call':>8} {'vs plain':>9}")
    for name, m in result["modes"].items():
        print(f"{name:<10} {m['calls']:>8} {m['calls_per_s']:>9.0f} {m['us_per_call']:>8.0f} {m['calls_per_s'] / plain:>8.2f}x")
    print(f"token check alone: {result['token_check_us']:.2f} us (in-process, 3 tokens); "
          f"{result['cpus']} CPUs, load {result['load_1m']:.1f}")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
