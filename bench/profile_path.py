"""Where a request's time goes: a per-layer timing table of the data path, one caller.

    .venv/bin/python bench/profile_path.py                        # iris, ocr_cls; 2 s warm-up + 8 s each
    .venv/bin/python bench/profile_path.py --model ocr_cls --restarts 5 --py-spy bench/results/spy

For each model, one client sends requests back to back (1 caller) to a fresh `mlos up`; the
scheduler's own Prometheus counters, scraped before and after the measured window, split the
client's mean latency into layers:

    client <-> front door    client mean - scheduler request mean (gRPC unary both ways, client lib)
    scheduler inside         request mean - executor round trip   (admission, queue, merge/split, convert)
    hop + executor           round trip - runtime                 (stream both ways, executor's own work)
    runtime                  compute_infer                        (inside session.run, on the executor)
    floor                    the same session.run in this process (the executor's thread rule)

With --restarts N the suite is restarted N times and the median of each layer is reported (the
issue's method: median of 5-7 restarts). With --py-spy DIR the scheduler and executor are
sampled during the first run and flame graphs land in DIR. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import onnxruntime as ort
from loadgen import build_request, open_channel
from prometheus_client.parser import text_string_to_metric_families
from suite_process import running_suite

from mlos.inference import grpc_service_pb2_grpc as pbg
from mlos_cli.demo import DemoModel, prepare_demo_models
from mlos_executor.onnx_backend import auto_intra_op_threads

RESULTS = Path(__file__).resolve().parent / "results"
LAYERS = ("client", "client <-> front door", "scheduler inside", "hop + executor", "runtime", "floor")


def scrape(url: str, model: str) -> dict[str, float]:
    """The scheduler's cumulative counters for one model (and its executor round trips)."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out = {"request_s": 0.0, "requests": 0.0, "compute_us": 0.0, "rtt_s": 0.0, "rtts": 0.0}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "mlos_scheduler_executor_roundtrip_seconds_sum":
                out["rtt_s"] += s.value
            elif s.name == "mlos_scheduler_executor_roundtrip_seconds_count":
                out["rtts"] += s.value
            elif s.labels.get("model") != model:
                continue
            elif s.name == "mlos_inference_request_duration_seconds_sum":
                out["request_s"] += s.value
            elif s.name == "mlos_inference_request_duration_seconds_count":
                out["requests"] += s.value
            elif s.name == "mlos_inference_compute_infer_duration_us_total":
                out["compute_us"] += s.value
    return out


async def one_caller(addr: str, model: DemoModel, warmup_s: float, duration_s: float) -> list[float]:
    request = build_request(model.name, model.sample_inputs(batch=1, seed=0))
    async with open_channel(addr) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        end_warmup = time.perf_counter() + warmup_s
        while time.perf_counter() < end_warmup:
            await stub.ModelInfer(request, timeout=60)
        return await _measure(stub, request, duration_s)


async def _measure(stub, request, duration_s: float) -> list[float]:
    latencies = []
    end = time.perf_counter() + duration_s
    while time.perf_counter() < end:
        t = time.perf_counter()
        await stub.ModelInfer(request, timeout=60)
        latencies.append(time.perf_counter() - t)
    return latencies


def floor_ms(model: DemoModel, seconds: float = 2.0) -> float:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = auto_intra_op_threads(2)
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(model.path), opts, providers=["CPUExecutionProvider"])
    feeds = model.sample_inputs(batch=1, seed=0)
    session.run(None, feeds)
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t)
    return statistics.mean(times) * 1e3


def spy(pid: int, out: Path, seconds: float) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(exe), "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200",
                             "--nonblocking", "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def children(pid: int) -> dict[str, int]:
    found = {}
    listing = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        child, _, args = line.strip().partition(" ")
        for svc in ("scheduler", "executor"):
            if f"mlos_{svc}" in args:
                found[svc] = int(child)
    return found


def run_once(models: list[DemoModel], args, spy_dir: Path | None) -> dict[str, dict[str, float]]:
    rows = {}
    with tempfile.TemporaryDirectory(prefix="mlos-profile-") as home, running_suite(Path(home), 180) as suite:
        url = suite.ready_event["metrics"]["scheduler"]
        for model in models:
            spies = []
            if spy_dir is not None:
                spy_dir.mkdir(parents=True, exist_ok=True)
                spies = [spy(pid, spy_dir / f"{model.name}-{svc}.svg", args.warmup + args.duration)
                         for svc, pid in children(suite.pid).items()]
            asyncio.run(one_caller(suite.scheduler_addr, model, args.warmup, 0.0))
            before = scrape(url, model.name)
            latencies = asyncio.run(one_caller(suite.scheduler_addr, model, 0.0, args.duration))
            after = scrape(url, model.name)
            for p in spies:
                p.wait()
            d = {k: after[k] - before[k] for k in after}
            client = statistics.mean(latencies) * 1e3
            request = d["request_s"] / d["requests"] * 1e3
            rtt = d["rtt_s"] / d["rtts"] * 1e3
            runtime = d["compute_us"] / d["requests"] / 1e3
            rows[model.name] = {
                "client": client, "client p50": statistics.median(latencies) * 1e3,
                "client <-> front door": client - request, "scheduler inside": request - rtt,
                "hop + executor": rtt - runtime, "runtime": runtime, "requests": len(latencies),
            }
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="iris,ocr_cls")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--restarts", type=int, default=1)
    p.add_argument("--py-spy", type=Path, help="write flame graphs of scheduler and executor here")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as demo_home:
        available = {m.name: m for m in prepare_demo_models(Path(demo_home))}
        models = [available[n] for n in args.model.split(",")]
        runs = [run_once(models, args, args.py_spy if i == 0 else None) for i in range(args.restarts)]
        floors = {m.name: floor_ms(m) for m in models}
    table = {}
    print(f"{'model':8s} | " + " | ".join(f"{layer:>21s}" for layer in LAYERS) + " | (ms, mean per request; median of runs)")
    for m in models:
        row = {k: statistics.median(r[m.name][k] for r in runs) for k in runs[0][m.name]}
        row["floor"] = floors[m.name]
        table[m.name] = row
        print(f"{m.name:8s} | " + " | ".join(f"{row[layer]:21.3f}" for layer in LAYERS))
    out = args.json or RESULTS / f"profile_path-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "layers": table, "runs": runs}, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
