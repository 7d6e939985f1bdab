"""One model through the front door with tensors in the message, the executor link by shared
memory (MLOS_SCHEDULER_EXECUTOR_SHM=auto) against in the message too (=off), plus the in-process
ONNX Runtime floor. Starts `mlos up --no-demo` once per mode (modes interleaved when repeated),
registers the model file, times sequential ModelInfer calls from one caller. Seconds, not minutes.

    python bench/bench_link.py            # rapidocr's detector, FP32 [1,3,640,640] (4.9 MB in)
    python bench/bench_link.py --model ~/m.onnx --shape 1,3,48,192 --rounds 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
from suite_process import running_suite

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NAME = "linkbench"


def default_model() -> Path:
    import importlib.util  # the package's __init__ needs cv2; only its model files are wanted

    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    return Path(spec.origin).parent / "models" / "ch_PP-OCRv4_det_infer.onnx"


def register(registry_addr: str, path: Path) -> None:
    import asyncio

    from mlos_registry.client import RegistryClient

    async def run() -> None:
        async with RegistryClient(registry_addr) as registry:
            await registry.register(NAME, path)

    asyncio.run(run())


def time_front_door(addr: str, input_name: str, x: np.ndarray, rounds: int) -> list[float]:
    from mlos.inference import grpc_service_pb2 as pb
    from mlos.inference import grpc_service_pb2_grpc as pbg

    opts = [("grpc.max_receive_message_length", 1 << 30), ("grpc.max_send_message_length", 1 << 30)]
    with grpc.insecure_channel(addr, options=opts) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=NAME), timeout=120)
        req = pb.ModelInferRequest(model_name=NAME)
        req.inputs.add(name=input_name, datatype="FP32", shape=list(x.shape))
        req.raw_input_contents.append(x.tobytes())
        out = []
        for i in range(rounds + 2):
            start = time.perf_counter()
            stub.ModelInfer(req, timeout=120)
            if i >= 2:  # two warm-up calls
                out.append((time.perf_counter() - start) * 1000)
        return out


def time_floor(path: Path, input_name: str, x: np.ndarray, rounds: int) -> list[float]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # as the executor chooses on a 2-core host (execution_slots=2)
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    out = []
    for i in range(rounds + 2):
        start = time.perf_counter()
        sess.run(None, {input_name: x})
        if i >= 2:
            out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="ONNX file (default: rapidocr's detector)")
    parser.add_argument("--shape", default="1,3,640,640", help="FP32 shape of the model's first input")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--repeat", type=int, default=1, help="interleaved suite starts per mode")
    parser.add_argument("--min-bytes", type=int, default=None, help="MLOS_SCHEDULER_EXECUTOR_SHM_MIN_BYTES")
    args = parser.parse_args()
    if args.min_bytes is not None:
        os.environ["MLOS_SCHEDULER_EXECUTOR_SHM_MIN_BYTES"] = str(args.min_bytes)
    path = (args.model or default_model()).expanduser()
    shape = [int(d) for d in args.shape.split(",")]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    input_name = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    results: dict[str, list[float]] = {"floor": [], "off": [], "auto": []}
    loads: dict[str, list[float]] = {"off": [], "auto": []}
    for _ in range(args.repeat):
        for mode in ("off", "auto"):
            os.environ["MLOS_SCHEDULER_EXECUTOR_SHM"] = mode
            with tempfile.TemporaryDirectory(prefix="mlos-bench-link-") as tmp:
                with running_suite(Path(tmp), startup_timeout_s=180, extra_args=("--no-demo",)) as suite:
                    register(suite.ready_event["registry_addr"], path)
                    loads[mode].append(os.getloadavg()[0])
                    results[mode] += time_front_door(suite.scheduler_addr, input_name, x, args.rounds)
        results["floor"] += time_floor(path, input_name, x, args.rounds)
    print(f"{path.name}, FP32 {shape} ({x.nbytes / 1e6:.1f} MB in), 1 caller, {len(results['off'])} calls "
          f"per row (median / min ms); load average {statistics.median(loads['off'] + loads['auto']):.1f}")
    for key, label in (("floor", "in-process ORT, 1 thread"), ("off", "front door, link in message"),
                       ("auto", "front door, link by shm")):
        print(f"  {label:30s} {statistics.median(results[key]):8.1f} / {min(results[key]):8.1f}")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"bench_link_{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"model": path.name, "shape": shape, "raw_ms": results, "loadavg": loads}, indent=1))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
