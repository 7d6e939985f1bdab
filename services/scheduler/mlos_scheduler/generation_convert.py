"""Open Inference Protocol responses of generation models (task "generate"), as Triton's LLM
backends shape them: one `text_output` BYTES [1] per response and, on ModelStreamInfer, the
decoupled final flag as the response parameter `triton_final_response`. (Their metadata and
config: convert.model_metadata / model_config.)"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping

from mlos.inference import grpc_service_pb2 as pb
from mlos_scheduler import convert
from mlos_scheduler.core import Scheduler
from mlos_scheduler.domain import InferRequest, ModelInfo
from mlos_scheduler.generation_door import text_result, whole_text
from mlos_scheduler.generation_params import generate_request

FINAL = "triton_final_response"


def text_response(model: ModelInfo, request_id: str, text: bytes, final: bool | None = None) -> pb.ModelInferResponse:
    """A response carrying `text` as text_output; `final` sets triton_final_response (None: unset,
    for ModelInfer, which is not decoupled)."""
    response = convert.infer_response(text_result(model, request_id, text))
    if final is not None:
        response.parameters[FINAL].bool_param = final
    return response


def empty_final_response(model: ModelInfo, request_id: str) -> pb.ModelInferResponse:
    """The end of a stream whose request set triton_enable_empty_final_response: no outputs."""
    response = pb.ModelInferResponse(model_name=model.name, model_version=str(model.version), id=request_id)
    response.parameters[FINAL].bool_param = True
    return response


async def stream(
    core: Scheduler,
    model: ModelInfo,
    req: InferRequest,
    params: Mapping[str, pb.InferParameter],
    put: Callable[[pb.ModelInferResponse], None],
) -> None:
    """Runs the generation a ModelStreamInfer request asks for and `put`s its responses, each
    with the request's id: one per chunk when its `stream` input is true (else one with the
    whole text), the last with triton_final_response=true; or, when the request set
    triton_enable_empty_final_response, all with false and then an empty final one. A failure
    propagates after the responses put so far; the caller's cancellation closes the generation
    (contextlib.aclosing), which stops it on the executor."""
    request = generate_request(model, req, params)
    final_on_text = not request.empty_final
    if not request.stream:
        put(text_response(model, request.id, await whole_text(core, request), final_on_text))
    else:
        ended = False
        async with contextlib.aclosing(core.generate(request)) as chunks:
            async for chunk in chunks:
                ended = chunk.final
                if chunk.text or (ended and final_on_text):  # an empty chunk only to carry the final flag
                    put(text_response(model, request.id, chunk.text, ended and final_on_text))
        if not ended and final_on_text:  # the generation stopped without a final chunk: still end the stream
            put(text_response(model, request.id, b"", True))
    if request.empty_final:
        put(empty_final_response(model, request.id))
