"""What following the registry's stream buys: a model lookup from the view vs a GetModel RPC, and
how soon a registration shows in a follower's view.

A real registry server on loopback (port 0, a temporary store) and a ViewFollower in this process:
- lookup: `--lookups` calls each of view.get + the scheduler's model_info (what its catalog does
  for a model the view holds) and of RegistryClient.get (GetModel: what it did before), best of 3;
- propagation: `--registrations` models registered one after another; per model, the RegisterModel
  call's own time and the time from its start until the follower's view holds it (p50 / p95).
The registry, the follower and the client share one event loop, as the scheduler's catalog and its
follower do. Prints a table, writes JSON to bench/results/ (or --json).

    .venv/bin/python bench/bench_watch.py            # make bench-watch
    .venv/bin/python bench/bench_watch.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import onnx
from bench_infer import machine_info, write_json
from onnx import TensorProto, helper

from mlos_registry.client import RegistryClient
from mlos_registry.config import RegistrySettings
from mlos_registry.core import Registry
from mlos_registry.domain import ModelChange
from mlos_registry.follow import ViewFollower
from mlos_registry.model_view import ModelView
from mlos_registry.server import create_server
from mlos_scheduler.catalog import model_info

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lookups", type=int, default=2000, help="lookups timed per way, per round (best of 3)")
    p.add_argument("--registrations", type=int, default=50, help="models registered for the propagation time")
    p.add_argument("--quick", action="store_true", help="tiny settings (smoke test): 100 lookups, 5 registrations")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.lookups, args.registrations = 100, 5
    return args


def model_file(folder: Path, i: int) -> Path:
    """y = x + i, x FP32 [N, 4]: a tiny ONNX model with bytes of its own."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    c = helper.make_tensor("c", TensorProto.FLOAT, [1], [float(i)])
    graph = helper.make_graph([helper.make_node("Add", ["x", "c"], ["y"])], "add", [x], [y], [c])
    path = folder / f"m{i}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


async def best_us(call, n: int) -> float:  # noqa: ANN001 - an async callable taking no argument
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            await call()
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def pcts_ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50_ms": statistics.median(ordered) * 1e3, "p95_ms": ordered[int(0.95 * (len(ordered) - 1))] * 1e3}


async def measure(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    settings = RegistrySettings(grpc_port=0, metrics_port=-1, data_dir=root / "registry")
    core = await Registry.open(settings)
    server, port = create_server(settings, core)
    await server.start()
    addr = f"127.0.0.1:{port}"
    follower = ViewFollower.to(addr, ModelView())
    try:
        async with RegistryClient(addr) as client:
            models = root / "models"
            models.mkdir()
            await client.register("m0", model_file(models, 0))
            follower.start()
            await follower.view.wait_for((await client.listing())[1], 30)
            view = follower.view

            async def from_view() -> None:
                mv = view.get("m0", 0)
                assert mv is not None
                model_info(mv)

            async def by_rpc() -> None:
                model_info(await client.get("m0", 0))

            lookup = {"view_us": await best_us(from_view, args.lookups), "get_model_us": await best_us(by_rpc, args.lookups)}
            applied: dict[str, float] = {}
            arrived = asyncio.Event()

            def on_change(change: ModelChange) -> None:
                applied[change.name] = time.perf_counter()
                arrived.set()

            view.add_listener(on_change)
            call_s, visible_s = [], []
            for i in range(1, args.registrations + 1):
                path = model_file(models, i)
                start = time.perf_counter()
                await client.register(f"m{i}", path)
                call_s.append(time.perf_counter() - start)
                while f"m{i}" not in applied:
                    arrived.clear()
                    await asyncio.wait_for(arrived.wait(), 30)
                visible_s.append(applied[f"m{i}"] - start)
            return {"lookup": lookup, "register_call": pcts_ms(call_s), "visible_in_view": pcts_ms(visible_s),
                    "registrations": args.registrations, "lookups": args.lookups}
    finally:
        await follower.close()
        await server.stop(None)
        await core.close()


def table(f: dict[str, Any]) -> str:
    lk = f["lookup"]
    return "\n".join([
        f"{'what':<44} {'value':>14}",
        f"{'lookup from the view (+ model_info)':<44} {lk['view_us']:>11.2f} us",
        f"{'lookup by GetModel RPC (+ model_info)':<44} {lk['get_model_us']:>11.2f} us",
        f"{'RegisterModel call, p50 / p95':<44} {f['register_call']['p50_ms']:>6.2f} / {f['register_call']['p95_ms']:.2f} ms",
        f"{'register start -> in the view, p50 / p95':<44} "
        f"{f['visible_in_view']['p50_ms']:>6.2f} / {f['visible_in_view']['p95_ms']:.2f} ms",
    ])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="mlos-bench-watch-") as tmp:
        figures = asyncio.run(measure(args, Path(tmp)))
    print(table(figures))
    payload = {"benchmark": "watch", "started_utc": started.isoformat(), "machine": machine_info(), **figures}
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    print(f"results: {write_json(args.json or RESULTS_DIR / f'watch-{stamp}.json', payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
