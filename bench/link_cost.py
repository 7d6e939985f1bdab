"""What one scheduler -> executor round trip costs: gRPC Execute stream vs the Unix link.

    .venv/bin/python bench/link_cost.py            # 3000 round trips each, 3 alternating runs

Both ends run in this process on one event loop, so the CPU time is the sum of both ends'. The
executor side is an echo (one WorkResult per Work, no model), so only the transport is measured:
grpc.aio's bidirectional stream, and the same ExecuteRequest/ExecuteReply messages framed on an
abstract Unix socket by mlos_executor.unix_link (the code the suite runs). Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from grpc import aio

from mlos.executor.v1 import executor_pb2 as pb
from mlos.executor.v1 import executor_pb2_grpc as pbg
from mlos_executor import unix_link

RESULTS = Path(__file__).resolve().parent / "results"


async def echo(requests, _context):
    async for message in requests:
        yield pb.ExecuteReply(results=[pb.WorkResult(id=w.id) for w in message.work])


class Echo(pbg.ExecutorServicer):
    Execute = staticmethod(echo)


async def round_trips(call, n: int) -> tuple[float, float]:
    message = pb.ExecuteRequest(work=[pb.Work(id=1)])
    for _ in range(200):
        await call.write(message)
        await call.read()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        await call.write(message)
        await call.read()
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


async def grpc_stream(n: int) -> tuple[float, float]:
    server = aio.server()
    pbg.add_ExecutorServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = pbg.ExecutorStub(channel).Execute()
        result = await round_trips(call, n)
        call.cancel()
    await server.stop(None)
    return result


async def unix(n: int) -> tuple[float, float]:
    name = unix_link.socket_name("link-cost")
    link = await unix_link.serve(name, echo, 64 << 20)
    call = unix_link.UnixCall(name, 64 << 20)
    result = await round_trips(call, n)
    call.cancel()
    link.close()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=3000, help="round trips per run")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    rows = []
    for run in range(args.runs):
        for transport, fn in (("grpc stream", grpc_stream), ("unix link", unix)):
            wall_us, cpu_us = asyncio.run(fn(args.n))
            rows.append({"run": run, "transport": transport, "round_trip_us": wall_us, "cpu_us": cpu_us})
    print(f"{'run':>3} | {'transport':11} | {'round trip us':>13} | {'CPU us (both ends)':>18}")
    for r in rows:
        print(f"{r['run']:>3} | {r['transport']:11} | {r['round_trip_us']:13.0f} | {r['cpu_us']:18.0f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"link_cost-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
