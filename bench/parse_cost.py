"""Per-call cost of the error interceptor parsing requests itself (vs grpc's deserializer).

The server's error interceptor receives raw bytes and parses them inside its error mapping, so a
body that is not valid protobuf gets INVALID_ARGUMENT. This times, in process, parse + the error
wrapper both ways on a tiny ModelInferRequest (iris, FP32 [1,4]): best of 3 x 100k calls.

    .venv/bin/python bench/parse_cost.py
"""

from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np

from mlos.inference import grpc_service_pb2 as pb
from mlos_common.interceptors import ErrorInterceptor, _rewrap

CALLS = 100_000


async def behavior(request, context):
    return request


async def best_us(handler, parse, raw: bytes) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(CALLS):
            await handler.unary_unary(parse(raw) if parse else raw, None)
        best = min(best, (time.perf_counter() - start) / CALLS * 1e6)
    return best


async def main() -> None:
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="X", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(np.ones((1, 4), np.float32).tobytes())
    raw = request.SerializeToString()
    handler = grpc.unary_unary_rpc_method_handler(behavior, request_deserializer=pb.ModelInferRequest.FromString)
    errors = ErrorInterceptor()
    grpc_parses = _rewrap(handler, "/m", errors.wrap_unary, errors.wrap_stream)
    we_parse = errors.rewrap(handler, "/m")
    print(f"grpc parses, error wrapper:        {await best_us(grpc_parses, pb.ModelInferRequest.FromString, raw):.2f} us/call")
    print(f"error interceptor parses (ours):   {await best_us(we_parse, None, raw):.2f} us/call")


if __name__ == "__main__":
    asyncio.run(main())
