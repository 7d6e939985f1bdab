"""Side by side, in one run: Triton's perf_analyzer against MLOS and Seldon MLServer, and the
in-process runtimes (ONNX Runtime, llama-cpp-python), on the same model files and input bytes.

    python bench/bench_peers.py                      # everything: 4 models x 5 servers x 1,8,32
    python bench/bench_peers.py --quick --models iris --servers floor,mlos
    python bench/bench_peers.py --quick --models tiny-bert-embed --servers llama-inproc,mlos
    python bench/bench_peers.py --servers mlserver-inproc --concurrency 1

Servers: floor (C Python threads on one onnxruntime session; ONNX models), llama-inproc (C Python
threads on one llama_cpp.Llama behind a lock; GGUF models), mlos (a fresh `mlos up`),
mlserver-inproc (MLServer 1.7.1, parallel_workers 0), mlserver (MLServer's default, 1 worker);
MLServer has no GGUF runtime here. A (server, model) pair that cannot be measured is listed under
"skipped" with its reason. Each row: infer/s, p50/p90/p99 ms and CPU core-ms per request for each
process, after waiting for an idle host. Prints one table, writes JSON to bench/results/.
Set-up: bench/peers/setup.sh.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import sys
import tempfile
from pathlib import Path

import grpc
import numpy as np
from bench_infer import machine_info, write_json
from loadgen import build_request, infer_once
from peers import pa_client, servers
from peers.inproc import IN_PROCESS, SERVES, floor_row, open_floor, skipped
from peers.models import FULL_LEVELS, MODELS, PeerModel, write_pa_input
from peers.procstat import wait_for_idle
from peers.report import format_table, ratios
from suite_process import SuiteStartError

from mlos.inference import grpc_service_pb2 as pb
from mlos.inference import grpc_service_pb2_grpc as pbg

logger = logging.getLogger("bench_peers")

SERVERS = ("floor", "llama-inproc", "mlos", "mlserver-inproc", "mlserver")
OPTIONAL_SERVERS = ("mlos-2w",)  # only when named: MLOS with two scheduler workers
RESULTS_DIR = Path(__file__).resolve().parent / "results"
ATOL = 1e-4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated: {', '.join(MODELS)}")
    p.add_argument("--servers", default=",".join(SERVERS),
                   help=f"comma-separated: {', '.join(SERVERS + OPTIONAL_SERVERS)}")
    p.add_argument("--concurrency", default=",".join(map(str, FULL_LEVELS)),
                   help="comma-separated levels (ocr_det: those <= 8 only)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 3 x 0.7 s perf_analyzer windows after max(10, 2 x C) "
                        "warm-up requests (else 3 x 5 s after max(50, 10 x C)); floor 0.5 + 2 s")
    p.add_argument("--idle-min", type=float, default=0.85, help="idle fraction to wait for")
    p.add_argument("--idle-timeout", type=float, help="seconds (default 120, --quick 6)")
    p.add_argument("--startup-timeout", type=float, default=180.0, help="seconds per server")
    p.add_argument("--home", type=Path, help="work folder (default: a temporary one)")
    p.add_argument("--json", type=Path, help="output (default bench/results/bench_peers-*.json)")
    p.add_argument("--shared-memory", choices=("none", "system"), default="none",
                   help="perf_analyzer's tensors in system shared memory (servers that support it)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    args.model_list = [m for m in args.models.split(",") if m]
    args.server_list = [s for s in args.servers.split(",") if s]
    args.levels = [int(c) for c in args.concurrency.split(",") if c]
    if unknown := set(args.model_list) - set(MODELS):
        p.error(f"unknown model(s) {sorted(unknown)}; choose from {list(MODELS)}")
    if unknown := set(args.server_list) - set(SERVERS + OPTIONAL_SERVERS):
        p.error(f"unknown server(s) {sorted(unknown)}; choose from {list(SERVERS + OPTIONAL_SERVERS)}")
    if not args.levels or min(args.levels) < 1:
        p.error("concurrency levels must be >= 1")
    args.windows, args.interval_ms = (3, 700) if args.quick else (3, 5000)
    args.warmup_per_caller, args.warmup_min = (2, 10) if args.quick else (10, 50)
    args.floor_warmup_s, args.floor_duration_s = (0.5, 2.0) if args.quick else (2.0, 15.0)
    if args.idle_timeout is None:
        args.idle_timeout = 6.0 if args.quick else 120.0
    return args


def check_outputs(addr: str, model: PeerModel, expected: dict[str, np.ndarray]) -> dict:
    """One ModelInfer compared with the in-process runtime on the same bytes. Values must match; a shape that
    differs only by size-1 dims (MLServer's NumpyCodec makes [3] into [3, 1]) is noted."""
    try:
        got = asyncio.run(infer_once(addr, build_request(model.name, model.inputs())))
    except grpc.aio.AioRpcError as exc:
        return {"ok": False, "error": f"{exc.code().name}: {exc.details()}"}
    report: dict = {"ok": True, "outputs": {}}
    for name, want in expected.items():
        have = got.get(name)
        if have is None or have.size != want.size:
            report["ok"] = False
            report["outputs"][name] = {"missing_or_size": None if have is None else list(have.shape)}
            continue
        close = bool(np.allclose(have.reshape(want.shape), want, atol=ATOL))
        report["ok"] = report["ok"] and close
        report["outputs"][name] = {"allclose": close, "shape": list(have.shape),
                                   "max_abs_diff": float(np.abs(have.reshape(want.shape).astype(
                                       np.float64) - want).max(initial=0.0))}  # fmt: skip
    return report


def max_batch_size(addr: str, name: str) -> int:
    with grpc.insecure_channel(addr) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        return stub.ModelConfig(pb.ModelConfigRequest(name=name), timeout=30).config.max_batch_size


def server_metadata(addr: str) -> dict:
    with grpc.insecure_channel(addr) as channel:
        meta = pbg.GRPCInferenceServiceStub(channel).ServerMetadata(pb.ServerMetadataRequest(),
                                                                    timeout=30)  # fmt: skip
    return {"name": meta.name, "version": meta.version, "extensions": list(meta.extensions)}


def _row(server: str, model: PeerModel, conc: int, idle, measured: dict) -> dict:
    return {"server": server, "model": model.name, "concurrency": conc, "idle": idle.to_json(),
            **measured}  # fmt: skip


def measure_server(name: str, args: argparse.Namespace, home: Path, models: list[PeerModel],
                   expected: dict, out: dict) -> None:  # fmt: skip
    """Start server ``name``, check and measure every model at every level, stop it. Fills
    ``out['servers'|'checks'|'rows']``; a failed level becomes a row with ``error``."""
    with servers.start(name, home, models, args.startup_timeout) as server:
        out["servers"][name] = {"addr": server.addr, "procs": server.procs,
                                "metadata": server_metadata(server.addr), **server.info}  # fmt: skip
        checks = out["checks"].setdefault(name, {})
        for model in models:
            checks[model.name] = check_outputs(server.addr, model, expected[model.name])
            mbs = max_batch_size(server.addr, model.name)
            data = write_pa_input(model, mbs, home / f"{name}-{model.name}-input.json")
            for conc in model.levels(args.levels):
                idle = wait_for_idle(args.idle_min, args.idle_timeout)
                logger.info("%s %s c=%d (max_batch_size %d)", name, model.name, conc, mbs)
                stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
                csv_path = RESULTS_DIR / f"bench_peers-{name}-{model.name}-c{conc}-{stamp}.csv"
                warmup = max(args.warmup_min, args.warmup_per_caller * conc)
                try:
                    level = pa_client.run_level(server.addr, model.name, data, conc, args.windows,
                                                args.interval_ms, server.procs, csv_path, warmup,
                                                args.shared_memory)  # fmt: skip
                    measured = {**level.to_json(), "max_batch_size": mbs}
                except pa_client.PerfAnalyzerError as exc:  # the other rows still count
                    logger.error("%s %s c=%d: %s", name, model.name, conc, exc)
                    measured = {"error": str(exc)[-2000:], "cpu_ms_per_request": {}}
                out["rows"].append(_row(name, model, conc, idle, measured))


def run(args: argparse.Namespace, home: Path) -> dict:
    """A model that cannot be prepared here (a GGUF one without gguf or llama-cpp-python) is
    skipped for every server ("*") with the reason; the others still run."""
    models: list[PeerModel] = []
    floors: dict = {}
    unprepared: list[dict] = []
    try:
        for name in args.model_list:
            try:
                model = MODELS[name].prepared(home / "models")
                floors[name] = open_floor(model)
            except ModuleNotFoundError as exc:
                logger.error("%s: cannot be prepared here: %s", name, exc)
                unprepared.append({"server": "*", "model": name,
                                   "reason": f"cannot be prepared here: {exc} (`make install` provides it)"})  # fmt: skip
                continue
            models.append(model)
        out = _measure(args, home, models, floors)
        out["skipped"] = unprepared + out["skipped"]
        return out
    finally:
        for floor in floors.values():
            floor.close()


def _measure(args: argparse.Namespace, home: Path, models: list[PeerModel], floors: dict) -> dict:
    """Every requested server on the models it serves; the pairs it cannot serve are "skipped"."""
    expected = {m.name: floors[m.name].outputs() for m in models}
    out: dict = {"models": {m.name: m.describe() for m in models}, "servers": {}, "checks": {},
                 "skipped": skipped(args.server_list, models), "rows": []}  # fmt: skip
    for name in (s for s in args.server_list if s in IN_PROCESS):
        served = [m for m in models if m.fmt in SERVES[name]]
        if served:
            out["servers"][name] = {"in_process": {m.name: floors[m.name].settings() for m in served}}
        for model in served:
            for conc in model.levels(args.levels):
                idle = wait_for_idle(args.idle_min, args.idle_timeout)
                logger.info("%s %s c=%d", name, model.name, conc)
                out["rows"].append(_row(name, model, conc, idle, floor_row(name, floors[model.name], conc, args)))
    for name in (s for s in args.server_list if s not in IN_PROCESS):
        served = [m for m in models if m.fmt in SERVES[name]]
        if not served:
            continue
        try:
            measure_server(name, args, home, served, expected, out)
        except SuiteStartError as exc:  # the other servers still run
            logger.error("%s: %s", name, exc)
            out["servers"][name] = {"error": str(exc)[-4000:]}
    ratios(out["rows"])
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    pa_version = pa_client.version()
    if set(args.server_list) - set(IN_PROCESS) and pa_version is None:
        logger.error("perf_analyzer is not set up: run bench/peers/setup.sh (or make bench-peers)")
        return 3
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC).isoformat()
    machine = {**machine_info(), "perf_analyzer": pa_version}
    if args.home is not None:
        args.home.mkdir(parents=True, exist_ok=True)
        result = run(args, args.home)
    else:
        with tempfile.TemporaryDirectory(prefix="mlos-peers-") as tmp:
            result = run(args, Path(tmp))
    payload = {"benchmark": "bench_peers", "started_utc": started,
               "finished_utc": dt.datetime.now(dt.UTC).isoformat(), "machine": machine,
               "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               **result}  # fmt: skip
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = write_json(args.json or RESULTS_DIR / f"bench_peers-{stamp}.json", payload)
    print(format_table(payload["rows"], payload["checks"]))
    for name, info in result["servers"].items():
        if "error" in info:
            print(f"{name}: NOT MEASURED: {info['error'].splitlines()[0]}")
    for skip in result["skipped"]:
        print(f"{skip['server']} x {skip['model']}: skipped: {skip['reason']}")
    print(f"results: {path}")
    if any("error" in r for r in [*result["rows"], *result["servers"].values()]) or any(
        skip["server"] == "*" for skip in result["skipped"]
    ):
        return 2
    ok = all(c.get("ok") for per in result["checks"].values() for c in per.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
