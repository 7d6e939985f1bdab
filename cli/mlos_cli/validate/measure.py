"""One zoo model through a running suite: install, load, correctness, latency, throughput, memory.

`validate_model` never raises for the model's own failures: a step that fails ends that model's
measurement with status "fail" and the step and reason, so one broken model does not hide the
others. Latency is measured per request at the client (the front door's gRPC ModelInfer), as
`repeats` runs of `requests` sequential requests; each run gives a p50 and p99, summarised by a
mean and a 95 % confidence interval over the runs (stats.interval). Throughput is requests/s
with `c` concurrent callers for `duration_s` each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlos_cli.validate import stats
from mlos_cli.validate.zoo import Inputs, Outputs, ZooModel

SAMPLES_KEPT = 400  # batch-1 latency samples kept for the distribution plot


@dataclass(frozen=True)
class Settings:
    requests: int = 50
    repeats: int = 3
    concurrency: tuple[int, ...] = (1, 4, 8)
    duration_s: float = 2.0
    warmup: int = 3

    def __post_init__(self) -> None:
        if self.requests < 1 or self.repeats < 1 or self.warmup < 0 or self.duration_s <= 0:
            raise ValueError("requests and repeats must be >= 1, warmup >= 0 and duration_s > 0")
        if not self.concurrency or min(self.concurrency) < 1:
            raise ValueError(f"concurrency levels must be >= 1, got {list(self.concurrency)}")


QUICK = Settings(requests=8, repeats=2, concurrency=(1, 4), duration_s=0.4, warmup=1)


class Links:
    """What validation talks to: the front door, the registry and the executors (their Status)."""

    def __init__(self, front: Any, registry: Any, executors: list[Any]) -> None:
        self.front = front
        self.registry = registry
        self.executors = executors

    async def loaded(self, name: str) -> list[Any]:
        """The executors' LoadedModel entries for `name` (any version)."""
        found = []
        for executor in self.executors:
            status = await executor.status()
            found += [m for m in status.models if m.model.name == name]
        return found


def compare(served: Outputs, reference: Outputs, tolerance: float) -> dict:
    """Per output: whether the served answer matches the in-process one (text exactly; numbers
    within `tolerance`, absolute and relative), and the largest absolute difference."""
    checks: dict[str, dict] = {}
    for name, want in reference.items():
        got = served.get(name)
        if got is None:
            checks[name] = {"ok": False, "why": f"output {name!r} missing from the answer ({sorted(served)})"}
        elif want.dtype == object:
            same = [bytes(a) for a in got.reshape(-1)] == [bytes(b) for b in want.reshape(-1)]
            checks[name] = {"ok": same, "why": "" if same else "text differs from the in-process runtime's"}
        elif got.shape != want.shape:
            checks[name] = {"ok": False, "why": f"shape {list(got.shape)} != in-process {list(want.shape)}"}
        else:
            diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if want.size else 0.0
            ok = bool(np.allclose(got, want, rtol=tolerance, atol=tolerance)) if tolerance else diff == 0.0
            checks[name] = {"ok": ok, "max_abs_diff": diff, "why": "" if ok else f"max |diff| {diff:.3g} > {tolerance:g}"}
    return checks


def _size_bytes(path) -> int:  # noqa: ANN001 - a Path: a file, or a folder (a checkpoint) counted whole
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


async def _timed(call: Callable[[], Any]) -> tuple[Any, int]:
    start = time.perf_counter_ns()
    result = await call()
    return result, time.perf_counter_ns() - start


async def _latency(links: Links, model: ZooModel, inputs: Inputs, settings: Settings) -> dict:
    runs_p50, runs_p99, kept = [], [], []
    for _ in range(settings.repeats):
        samples = []
        for _ in range(settings.requests):
            _, ns = await _timed(lambda: links.front.infer(model.name, inputs))
            samples.append(ns)
        runs_p50.append(stats.percentile_ms(samples, 50))
        runs_p99.append(stats.percentile_ms(samples, 99))
        kept += samples
    return {"p50_ms": stats.interval(runs_p50).as_dict(), "p99_ms": stats.interval(runs_p99).as_dict(),
            "samples_ms": [ns / 1e6 for ns in kept[:SAMPLES_KEPT]]}


async def _throughput(links: Links, model: ZooModel, inputs: Inputs, callers: int, duration_s: float) -> dict:
    samples: list[int] = []
    deadline = time.perf_counter() + duration_s

    async def caller() -> None:
        while time.perf_counter() < deadline:
            _, ns = await _timed(lambda: links.front.infer(model.name, inputs))
            samples.append(ns)

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.perf_counter() - start
    return {"concurrency": callers, "requests_per_s": len(samples) / elapsed,
            "p50_ms": stats.percentile_ms(samples, 50), "p99_ms": stats.percentile_ms(samples, 99)}


def batch_sizes(model: ZooModel, max_batch_size: int) -> tuple[int, ...]:
    """The batches to try: the zoo's, within the registered max_batch_size (which joins them);
    with max_batch_size 0 (the model batches inside its tensors, or not at all) the zoo's as is."""
    if max_batch_size <= 0:
        return model.batch_sizes
    return tuple(sorted({1, max_batch_size, *(b for b in model.batch_sizes if b <= max_batch_size)}))


async def _best_batch(links: Links, model: ZooModel, sizes: tuple[int, ...], settings: Settings) -> dict:
    rows = []
    for batch in sizes:
        start = time.perf_counter_ns()
        await _sequential(links, model.name, model.sample(batch, 0), settings.requests)
        total_ns = time.perf_counter_ns() - start
        rows.append({"batch": batch, "rows_per_s": batch * settings.requests / (total_ns / 1e9)})
    best = max(rows, key=lambda r: r["rows_per_s"])
    return {"batch": best["batch"], "rows_per_s": best["rows_per_s"], "tried": rows}


async def _sequential(links: Links, name: str, inputs: Inputs, count: int) -> None:
    for _ in range(count):
        await links.front.infer(name, inputs)


async def _correctness(links: Links, model: ZooModel, sizes: tuple[int, ...]) -> dict:
    checks = {}
    for batch in sorted({1, max(sizes)}):
        inputs = model.sample(batch, 0)
        served = await links.front.infer(model.name, inputs)
        reference = await asyncio.to_thread(model.reference, inputs)
        checks[f"batch {batch}"] = compare(served, reference, model.tolerance)
    failed = [f"{where}, {out}: {c['why']}" for where, per in checks.items() for out, c in per.items() if not c["ok"]]
    return {"ok": not failed, "tolerance": model.tolerance, "checks": checks, "failures": failed}


async def validate_model(links: Links, model: ZooModel, settings: Settings, step: Callable[[str], None]) -> dict:
    """Every measurement of one model; `step(what)` is called as each part starts (progress)."""
    result: dict[str, Any] = {"name": model.name, "format": model.format, "task": model.task, "source": model.source,
                              "file_bytes": _size_bytes(model.path), "status": "fail", "reason": ""}
    where = "install"
    try:
        step("install")
        version, ns = await _timed(lambda: links.registry.register(model.name, str(model.path),
                                                                   labels={"source": model.source[:1000]}))
        sizes = batch_sizes(model, version.config.max_batch_size)
        result.update(install_s=model.prepare_s + ns / 1e9, prepare_s=model.prepare_s, version=version.version,
                      sha256=version.sha256,
                      max_batch_size=version.config.max_batch_size)
        where = "load"
        step("load")
        was_loaded = bool(await links.loaded(model.name))
        _, ns = await _timed(lambda: links.front.load(model.name))
        loaded = await links.loaded(model.name)
        result.update(load_s=ns / 1e9, was_loaded=was_loaded,
                      executor_load_ms=max((m.load_ms for m in loaded), default=0),
                      runtime=loaded[0].runtime if loaded else "")
        inputs = model.sample(1, 0)
        where = "warm-up"
        step("warm-up")
        await _sequential(links, model.name, inputs, settings.warmup)
        where = "correctness"
        step("correctness")
        result["correctness"] = await _correctness(links, model, sizes)
        where = "latency"
        step("latency")
        result["batch1"] = await _latency(links, model, inputs, settings)
        where = "best batch"
        step("best batch")
        result["best_batch"] = await _best_batch(links, model, sizes, settings)
        where = "throughput"
        result["throughput"] = []
        for callers in settings.concurrency:
            step(f"throughput x{callers}")
            result["throughput"].append(await _throughput(links, model, inputs, callers, settings.duration_s))
        where = "memory"
        loaded = await links.loaded(model.name)
        result["memory_bytes"] = sum(m.memory_bytes for m in loaded)
    except Exception as exc:  # noqa: BLE001 - any failure of this model is its result, named by step
        result["reason"] = f"{where}: {type(exc).__name__}: {exc}"
        return result
    correct = result["correctness"]
    if correct["ok"]:
        result["status"] = "pass"
    else:
        result["reason"] = "correctness: " + "; ".join(correct["failures"])
    return result
