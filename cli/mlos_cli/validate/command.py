"""`mlos validate`: the zoo through a running suite (or one it starts), JSON + HTML dashboard.

Exit status: 0 when every model passed (and, with --compare, nothing regressed), 1 otherwise,
2 when validation itself could not run (bad arguments, no suite).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the run's modules (numpy, matplotlib) load only when `mlos validate` runs
    from mlos_cli.validate import measure

CHECKOUT_RESULTS = Path(__file__).resolve().parents[3] / "bench" / "results"
# Benchmark runs committed with the code (bench/reference/README.md says where and when they were
# taken): the page shows one, marked as recorded, for a section this checkout has not measured.
CHECKOUT_REFERENCE = Path(__file__).resolve().parents[3] / "bench" / "reference"


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"concurrency must be a comma-separated list of integers, got {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"concurrency levels must be >= 1, got {text!r}")
    return levels


def add_parser(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("validate", help="every zoo model through the suite vs the in-process runtime; JSON + HTML")
    v.add_argument("--out", type=Path, default=None, help="folder for results.json and index.html "
                   "(default ./mlos-validation/<UTC time>)")
    v.add_argument("--addr", default="", help="front door of a running suite (default: start one for the run)")
    v.add_argument("--registry", default="127.0.0.1:8101", help="with --addr: the suite's registry")
    v.add_argument("--executor", action="append", default=[], metavar="ADDR",
                   help="with --addr: an executor (repeatable; default 127.0.0.1:8201)")
    v.add_argument("--home", type=Path, default=None, help="home of the suite this run starts (default: a temp folder)")
    v.add_argument("--models", default="", help="comma-separated zoo models (default: all; see --list)")
    v.add_argument("--list", action="store_true", help="list the zoo and exit")
    v.add_argument("--quick", action="store_true", help="few requests per measurement (a smoke run)")
    v.add_argument("--requests", type=int, default=None, help="sequential requests per latency run (50)")
    v.add_argument("--repeats", type=int, default=None, help="latency runs per model, for the interval (3)")
    v.add_argument("--concurrency", type=_levels, default=None, help="callers for throughput (1,4,8)")
    v.add_argument("--duration-s", type=float, default=None, help="seconds per throughput level (2)")
    v.add_argument("--compare", type=Path, default=None, metavar="OLD.json", help="flag regressions against an older run")
    v.add_argument("--screenshot", action="store_true",
                   help="also render index.png with headless Chromium (Debian's chromium package)")
    v.add_argument("--bench-results", type=Path, default=CHECKOUT_RESULTS,
                   help="bench/results folder feeding the peers and on/off sections")
    v.add_argument("--bench-reference", type=Path, default=CHECKOUT_REFERENCE,
                   help="recorded runs shown (marked as such) for a section --bench-results lacks")


def _settings(args: argparse.Namespace) -> measure.Settings:
    from mlos_cli.validate import measure

    base = measure.QUICK if args.quick else measure.Settings()
    return measure.Settings(
        requests=args.requests or base.requests, repeats=args.repeats or base.repeats,
        concurrency=args.concurrency or base.concurrency, duration_s=args.duration_s or base.duration_s,
        warmup=base.warmup)


@contextlib.asynccontextmanager
async def _links(args: argparse.Namespace, home: Path) -> AsyncIterator[measure.Links]:
    from mlos_cli.frontdoor import FrontDoor
    from mlos_cli.validate import measure
    from mlos_executor.client import ExecutorClient
    from mlos_registry.client import RegistryClient

    async with contextlib.AsyncExitStack() as stack:
        if args.addr:
            front_addr, registry_addr = args.addr, args.registry
            executor_addrs = args.executor or ["127.0.0.1:8201"]
        else:
            from mlos_cli.launcher import Suite, SuiteConfig

            print(f"mlos validate: starting a suite in {home} ...", file=sys.stderr, flush=True)
            suite = Suite(SuiteConfig(home=home, ephemeral_ports=True, demo=False, http_port=-1, predictor_http_port=-1))
            await suite.start()
            stack.push_async_callback(suite.stop)
            info = suite.endpoints()
            front_addr, registry_addr = info["scheduler_addr"], info["registry_addr"]
            executor_addrs = [v for k, v in info.items() if k.startswith("executor") and k.endswith("_addr")]
        front = await stack.enter_async_context(FrontDoor(front_addr))
        registry = await stack.enter_async_context(RegistryClient(registry_addr, timeout_s=600.0))
        executors = [await stack.enter_async_context(ExecutorClient(a)) for a in executor_addrs]
        yield measure.Links(front, registry, executors)


async def _run_zoo(links: measure.Links, args: argparse.Namespace, home: Path, settings: measure.Settings) -> dict:
    from tqdm import tqdm

    from mlos_cli.validate import environment, measure
    from mlos_cli.validate.zoo import build_zoo

    only = {n.strip() for n in args.models.split(",") if n.strip()} or None
    zoo = await asyncio.to_thread(build_zoo, home / "demo", only)
    modes = sorted({(await e.status()).runtime_mode for e in links.executors})
    started = time.time()
    results = []
    with tqdm(zoo.models, desc="validate", unit="model", file=sys.stderr, dynamic_ncols=True) as bar:
        for model in bar:
            def step(what: str, name: str = model.name) -> None:
                bar.set_postfix_str(f"{name}: {what}")

            results.append(await measure.validate_model(links, model, settings, step))
    return {"schema": 1, "started_utc": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
            "duration_s": time.time() - started, "settings": settings.__dict__ | {"concurrency": list(settings.concurrency)},
            "environment": environment.describe(modes), "models": results, "missing": zoo.missing}


def _print_table(results: dict) -> None:
    print(f"{'MODEL':<18} {'RESULT':<6} {'INSTALL S':>9} {'P50 MS':>8} {'P99 MS':>8} {'BEST ROWS/S':>12} {'MEM MB':>7}  REASON")
    for m in results["models"]:
        p50 = m.get("batch1", {}).get("p50_ms", {}).get("mean", float("nan"))
        p99 = m.get("batch1", {}).get("p99_ms", {}).get("mean", float("nan"))
        print(f"{m['name']:<18} {m['status']:<6} {m.get('install_s', float('nan')):>9.3f} {p50:>8.3f} {p99:>8.3f} "
              f"{m.get('best_batch', {}).get('rows_per_s', float('nan')):>12.0f} "
              f"{m.get('memory_bytes', 0) / 2**20:>7.1f}  {m.get('reason', '')}")


async def validate(args: argparse.Namespace) -> int:
    try:
        return await _validate(args)
    except ValueError as exc:
        print(f"mlos validate: {exc}", file=sys.stderr)
        return 2


async def _validate(args: argparse.Namespace) -> int:
    from mlos_cli.validate import bench_feed, compare, report
    from mlos_cli.validate.zoo import build_zoo

    only = {n.strip() for n in args.models.split(",") if n.strip()} or None
    with contextlib.ExitStack() as cleanup:
        home = args.home or Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="mlos-validate-")))
        if args.list:
            zoo = await asyncio.to_thread(build_zoo, home / "demo", only)
            for m in zoo.models:
                print(f"{m.name:<18} {m.format:<5} {m.task:<9} {m.source}")
            for name, why in zoo.missing.items():
                print(f"{name:<18} missing: {why}")
            return 0
        old = compare.load(args.compare) if args.compare else None
        settings = _settings(args)
        async with _links(args, home) as links:
            results = await _run_zoo(links, args, home, settings)
    for section, feed in (("peers", bench_feed.peers), ("generation", bench_feed.generation), ("modes", bench_feed.modes)):
        results[section] = bench_feed.measured_or_recorded(feed, args.bench_results, args.bench_reference)
    if old is not None:
        results["regressions"] = compare.regressions(old, results, str(args.compare))
    out = args.out or Path("mlos-validation") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path, html_path = report.write(results, out)
    if args.screenshot:
        from mlos_cli.validate.screenshot import screenshot

        try:
            print(f"mlos validate: screenshot {screenshot(html_path, out / 'index.png')}")
        except RuntimeError as exc:
            print(f"mlos validate: no screenshot: {exc}", file=sys.stderr)
    _print_table(results)
    failed = [m["name"] for m in results["models"] if m["status"] != "pass"]
    regressions = results.get("regressions", {}).get("found", [])
    print(f"mlos validate: {len(results['models']) - len(failed)}/{len(results['models'])} passed"
          + (f", {len(regressions)} regression(s)" if regressions else "")
          + f"; {json_path} and {html_path}")
    return 1 if failed or regressions else 0
