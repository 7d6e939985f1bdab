"""A large tensor sent in the message vs by system shared memory, through `mlos up`.

Builds an ONNX Identity model on FP32 [B, N] (both dynamic; sent as [1, N]) with the `onnx` helper API, registers it,
and times unmodified tritonclient.grpc (or, with --protocol http, tritonclient.http on the REST port) calls:
the tensor in raw_input_contents / back in
raw_output_contents, against input and output in registered regions (only descriptors in the
messages). Latency is one ModelInfer call until the output is readable as numpy. Few rounds,
one caller: seconds, not minutes. Prints a table and writes JSON.

    python bench/bench_shm.py                    # 16 MB, 15 rounds each
    python bench/bench_shm.py --mb 4 --rounds 9
    python bench/bench_shm.py --protocol http    # the same through the KServe v2 REST front door
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from suite_process import running_suite

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MODEL = "identity_fp32"


def build_identity(path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "n"])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def register(registry_addr: str, path: Path) -> None:
    from mlos_registry.client import RegistryClient  # registry protos only: no clash with tritonclient

    async def run() -> None:
        async with RegistryClient(registry_addr) as registry:
            await registry.register(MODEL, path)

    asyncio.run(run())


def timed(fn, rounds: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _shape(output) -> list[int]:
    """An output's shape from tritonclient.grpc (a message) or tritonclient.http (a dict)."""
    return list(output["shape"] if isinstance(output, dict) else output.shape)


def measure(addr: str, nbytes: int, rounds: int, protocol: str = "grpc") -> dict:
    """`addr` is host:port of the gRPC front door, or of the REST one with protocol "http"."""
    import tritonclient.utils.shared_memory as shm

    tc = importlib.import_module(f"tritonclient.{protocol}")  # the same API; over http tensors are binary data

    client = tc.InferenceServerClient(addr)
    client.load_model(MODEL)
    x = np.random.default_rng(0).standard_normal((1, nbytes // 4)).astype(np.float32)

    def in_message() -> None:
        inp = tc.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        got = client.infer(MODEL, [inp], outputs=[tc.InferRequestedOutput("y")]).as_numpy("y")
        assert got.shape == x.shape

    key_in, key_out = f"/mlos_bench_{os.getpid()}_in", f"/mlos_bench_{os.getpid()}_out"
    h_in = shm.create_shared_memory_region("bench_in", key_in, x.nbytes)
    h_out = shm.create_shared_memory_region("bench_out", key_out, x.nbytes)
    try:
        client.unregister_system_shared_memory()
        client.register_system_shared_memory("bench_in", key_in, x.nbytes)
        client.register_system_shared_memory("bench_out", key_out, x.nbytes)
        copy_in_ms = timed(lambda: shm.set_shared_memory_region(h_in, [x]), 3)

        def by_shm() -> None:
            inp = tc.InferInput("x", list(x.shape), "FP32")
            inp.set_shared_memory("bench_in", x.nbytes)
            out = tc.InferRequestedOutput("y")
            out.set_shared_memory("bench_out", x.nbytes)
            result = client.infer(MODEL, [inp], outputs=[out])
            got = shm.get_contents_as_numpy(h_out, np.float32, _shape(result.get_output("y")))
            assert got.shape == x.shape

        message_ms = timed(in_message, rounds)
        shm_ms = timed(by_shm, rounds)
        assert np.array_equal(shm.get_contents_as_numpy(h_out, np.float32, list(x.shape)), x)
        client.unregister_system_shared_memory()
    finally:
        shm.destroy_shared_memory_region(h_in)
        shm.destroy_shared_memory_region(h_out)
        client.close()
    return {"in_message_ms": message_ms, "shared_memory_ms": shm_ms, "client_copy_in_ms": copy_in_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=16.0, help="tensor size in MiB (FP32)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc", help="front door to call")
    args = parser.parse_args()
    nbytes = int(args.mb * (1 << 20)) // 4 * 4
    with tempfile.TemporaryDirectory(prefix="mlos-bench-shm-") as tmp:
        home = Path(tmp)
        build_identity(home / "identity.onnx")
        (home / "suite").mkdir()
        with running_suite(home / "suite", startup_timeout_s=120) as suite:
            register(suite.ready_event["registry_addr"], home / "identity.onnx")
            addr = suite.scheduler_addr
            if args.protocol == "http":
                addr = suite.ready_event["scheduler_http"].removeprefix("http://")
            result = measure(addr, nbytes, args.rounds, args.protocol)
    med = {k: statistics.median(v) for k, v in result.items()}
    print(f"{MODEL} over {args.protocol}, {nbytes / (1 << 20):.1f} MiB FP32 in and out, 1 caller, "
          f"{args.rounds} rounds (median / min ms)")
    for k in ("in_message_ms", "shared_memory_ms", "client_copy_in_ms"):
        print(f"  {k:20s} {med[k]:8.1f} / {min(result[k]):8.1f}")
    print(f"  shared memory / in message = {med['shared_memory_ms'] / med['in_message_ms']:.2f}")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"bench_shm_{time.strftime('%Y%m%dT%H%M%S')}.json"
    summary = {"protocol": args.protocol, "bytes": nbytes, "rounds": args.rounds, "median_ms": med, "raw_ms": result}
    out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
