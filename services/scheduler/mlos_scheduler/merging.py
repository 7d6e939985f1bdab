"""Merging requests into one batch and splitting the answer, on raw bytes.

Numeric tensors are row-major, so rows of a batch are contiguous byte ranges: merging is a
join and splitting is slicing; no numpy, no per-element work. BYTES tensors (length-prefixed
elements) are split by walking their element headers.
"""

from __future__ import annotations

import struct

from mlos_common.tensors import dtype, element_count
from mlos_scheduler.domain import InferRequest, Tensor
from mlos_scheduler.errors import BatchMismatch


def merge_inputs(requests: list[InferRequest], batched: bool) -> list[Tensor]:
    first = requests[0]
    if len(requests) == 1:
        return first.inputs
    if not batched:
        raise BatchMismatch("cannot merge requests for a model that does not batch")
    merged = []
    for i, tensor in enumerate(first.inputs):
        rows = sum(r.inputs[i].shape[0] for r in requests)
        merged.append(
            Tensor(
                tensor.name,
                tensor.datatype,
                (rows, *tensor.shape[1:]),
                b"".join(r.inputs[i].raw for r in requests),
            )
        )
    return merged


def split_outputs(outputs: list[Tensor], requests: list[InferRequest]) -> list[list[Tensor]]:
    """One list of output tensors per request, cut along the first dimension."""
    if len(requests) == 1:
        return [outputs]
    per_request: list[list[Tensor]] = [[] for _ in requests]
    total = sum(r.rows for r in requests)
    for out in outputs:
        if not out.shape or out.shape[0] != total:
            raise BatchMismatch(
                f"output {out.name!r} has shape {list(out.shape)} for a batch of {total} rows"
            )
        for idx, piece in enumerate(_cut(out, [r.rows for r in requests])):
            per_request[idx].append(piece)
    return per_request


def _cut(out: Tensor, rows: list[int]) -> list[Tensor]:
    tail = out.shape[1:]
    per_row = element_count(tail, tensor=out.name) if tail else 1
    dt = dtype(out.datatype)
    pieces = []
    if dt.itemsize:
        row_bytes = per_row * dt.itemsize
        view = memoryview(out.raw)
        pos = 0
        for n in rows:
            end = pos + n * row_bytes
            pieces.append(Tensor(out.name, out.datatype, (n, *tail), bytes(view[pos:end])))
            pos = end
        return pieces
    # BYTES: walk the length prefixes to find where each request's elements end.
    pos = 0
    raw = out.raw
    for n in rows:
        start = pos
        for _ in range(n * per_row):
            (length,) = struct.unpack_from("<I", raw, pos)
            pos += 4 + length
        pieces.append(Tensor(out.name, out.datatype, (n, *tail), raw[start:pos]))
    return pieces
