"""Where a request at the front door goes: a tensor model's batcher, or a generation.

Both front doors (gRPC and REST) decode a request the same way (convert.infer_request) before
the model is known; `infer_or_model` then answers a tensor model's request exactly as before
(one lookup of the serving set, no other work) and hands back the model when it generates, so
the caller builds its GenerateRequest (generation_params) and its responses. No grpc here.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Mapping

from mlos.inference import grpc_service_pb2 as pb
from mlos_scheduler.core import Scheduler
from mlos_scheduler.domain import GenerateRequest, InferRequest, InferResult, ModelInfo, Tensor
from mlos_scheduler.generation_params import TEXT_OUTPUT, generate_request


async def infer_or_model(core: Scheduler, req: InferRequest) -> InferResult | ModelInfo:
    """The tensor model's result, or the model `req` names when it is a generation model (nothing
    is run for it then). A model not loaded yet is looked up first (a tensor model is then
    loaded by core.infer as before; a generation model by core.generate)."""
    served = core.find(req.model, req.version)
    if served is not None and not served.model.generates:
        return await core.infer(req, served)
    model = served.model if served is not None else await core.describe(req.model, req.version)
    if model.generates:
        return model
    return await core.infer(req)


async def whole_text(core: Scheduler, request: GenerateRequest) -> bytes:
    """Runs the generation to its end and joins its chunks' text. Leaving early (the caller is
    cancelled, a chunk fails) closes the generation, which stops it on the executor."""
    parts = []
    async with contextlib.aclosing(core.generate(request)) as chunks:
        async for chunk in chunks:
            parts.append(chunk.text)
    return b"".join(parts)


def text_result(model: ModelInfo, request_id: str, text: bytes) -> InferResult:
    """`text` as a result with the one output text_output, BYTES [1] (the tensor responders'
    input: shared memory placement aside, both protocols then answer as for any model)."""
    raw = struct.pack("<I", len(text)) + text
    return InferResult(model.name, model.version, request_id, [Tensor(TEXT_OUTPUT, "BYTES", (1,), raw)])


async def whole_result(
    core: Scheduler, model: ModelInfo, req: InferRequest, params: Mapping[str, pb.InferParameter]
) -> InferResult:
    """An infer call on a generation model (gRPC ModelInfer, REST infer): the whole text as
    text_output. A `stream` input is answered the same way: such a call has one response."""
    request = generate_request(model, req, params)
    request.stream = False
    return text_result(model, req.id, await whole_text(core, request))
