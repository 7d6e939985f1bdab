"""What the front door's watch costs one request (telemetry counts, value sample, threat gate).

    .venv/bin/python bench/front_door_cost.py          # ~30 s; prints microseconds per request

The code the servicer runs per ModelInfer when the scheduler has a predictor: the x-mlos-client
lookup in the metadata, the door's enter (rate and client counts, LRU, threat gate), the payload
size and bounded value sample of the decoded inputs, and the exit. For comparison, the message's
ByteSize (not used: with upb it costs in proportion to the message). Measured in this process
with timeit (best of 5), for three request sizes, with no client flagged and with another client
flagged (the gate then looks the client up). Without a predictor the door is inactive: one
attribute test per request.
"""

from __future__ import annotations

import timeit

import numpy as np

from mlos.inference import grpc_service_pb2 as pb
from mlos_common.tensors import array_to_raw
from mlos_scheduler.client_stats import ClientBook, RateBook
from mlos_scheduler.domain import InferRequest, Tensor
from mlos_scheduler.front_door import FrontDoor, header_of
from mlos_scheduler.scores import Score, ScoreTable
from mlos_scheduler.threat import ThreatGate

SHAPES = {"iris 2x4": (2, 4), "ocr_cls 1x3x48x192": (1, 3, 48, 192), "image 1x3x640x640": (1, 3, 640, 640)}
METADATA = (("x-mlos-client", "alice"), ("user-agent", "grpc-python/1.76"), ("grpc-accept-encoding", "identity"))
PEER = "ipv4:127.0.0.1:53412"


def per_call_us(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def row(door: FrontDoor, table: ScoreTable, label: str, shape: tuple[int, ...]) -> str:
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    raw = array_to_raw(x)
    msg = pb.ModelInferRequest(model_name="m")
    msg.inputs.add(name="x", datatype="FP32", shape=list(shape))
    msg.raw_input_contents.append(raw)
    request = InferRequest("m", "", "", [Tensor("x", "FP32", shape, raw)], [])
    number = 20000 if x.size < 100_000 else 2000

    def watched() -> None:
        with door.enter(header_of(METADATA), PEER, "m") as seen:
            seen.decoded(request)

    def inactive() -> None:
        if door.gate is None:  # what the servicer tests when there is no predictor
            raise AssertionError

    size_us = per_call_us(msg.ByteSize, number)
    meta_us = per_call_us(lambda: header_of(METADATA), number)
    table.replace("threat", [])
    door_us = per_call_us(watched, number)
    table.replace("threat", [Score("mallory", 0.99, "burst_ratio 20", 0, table.clock())])
    flag_us = per_call_us(watched, number)
    idle_us = per_call_us(inactive, number)
    return f"{label:24} {size_us:9.2f} {meta_us:9.2f} {door_us:9.2f} {flag_us:10.2f} {idle_us:9.2f}"


def main() -> None:
    table = ScoreTable(stale_after_s=2.0)
    door = FrontDoor(ClientBook(), RateBook({"m": 1}), ThreatGate(table))
    print(f"{'request':24} {'ByteSize':>9} {'metadata':>9} {'door':>9} {'door+flag':>10} {'inactive':>9}  (us/request)")
    for label, shape in SHAPES.items():
        print(row(door, table, label, shape))


if __name__ == "__main__":
    main()
