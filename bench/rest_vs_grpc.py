"""Sequential tiny requests over KServe v2 REST and gRPC, through tritonclient, against a running suite.

    python bench/rest_vs_grpc.py --grpc 127.0.0.1:8001 --http 127.0.0.1:8080 -n 500

One caller, `iris` with one row: the per-request cost of each protocol's path (client included).
Kept short on purpose: the machine is shared.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

ROW = np.array([[5.1, 3.5, 1.4, 0.2]], np.float32)


def timed(call, n: int) -> list[float]:
    for _ in range(20):  # warm-up: connections, first-call paths
        call()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grpc", default="127.0.0.1:8001")
    p.add_argument("--http", default="127.0.0.1:8080")
    p.add_argument("-n", type=int, default=500)
    args = p.parse_args()

    g = grpcclient.InferenceServerClient(args.grpc)
    gin = grpcclient.InferInput("X", [1, 4], "FP32")
    gin.set_data_from_numpy(ROW)
    h = httpclient.InferenceServerClient(args.http)
    hbin = httpclient.InferInput("X", [1, 4], "FP32")
    hbin.set_data_from_numpy(ROW, binary_data=True)
    hjson = httpclient.InferInput("X", [1, 4], "FP32")
    hjson.set_data_from_numpy(ROW, binary_data=False)
    json_out = [httpclient.InferRequestedOutput(n, binary_data=False) for n in ("label", "probabilities")]
    cases = {
        "gRPC (tritonclient.grpc)": lambda: g.infer("iris", [gin]),
        "REST binary (tritonclient.http)": lambda: h.infer("iris", [hbin]),
        "REST JSON (tritonclient.http)": lambda: h.infer("iris", [hjson], outputs=json_out),
    }
    print(f"{'path':<34} {'n':>5} {'total s':>8} {'p50 ms':>7} {'p99 ms':>7}")
    for name, call in cases.items():
        t = sorted(timed(call, args.n))
        print(f"{name:<34} {args.n:>5} {sum(t):>8.2f} {statistics.median(t) * 1e3:>7.2f} "
              f"{t[int(len(t) * 0.99) - 1] * 1e3:>7.2f}")
    g.close()
    h.close()


if __name__ == "__main__":
    main()
