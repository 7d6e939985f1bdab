"""Triton's generate extension over KServe v2 REST, for generation models.

- POST /v2/models/{name}[/versions/{v}]/generate -> `{"model_name", "model_version", "text_output"}`
  (and `"id"` when the request has one): the whole text.
- POST .../generate_stream -> Server-Sent Events, one `data: {json}\\n\\n` per chunk of text (the
  same object, text_output being that chunk's text); the stream ends when the generation does.
  A failure before the first chunk is an ordinary error answer with its status; after it, the
  last event is `data: {"error": "CODE: message"}`.

Body (a JSON object; any other field is refused, listing these): `text_input` (a string, the
prompt; required), `stream` (boolean, ignored by /generate), `sampling_parameters` (a string
holding the JSON object of generation_params), `id` (a string), and `parameters` (an object):
the sampling keys (max_tokens, temperature, ...) may be given here instead, as in Triton's vLLM
backend (not both here and in sampling_parameters); the others are request parameters
(`priority`, `timeout`, `first_token_timeout`, ...), checked as over gRPC. The request goes
through the same decoding (convert.infer_request) and checks as an infer call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from collections.abc import Callable
from typing import Any

from aiohttp import web

from mlos.inference import grpc_service_pb2 as pb
from mlos_common.errors import MlosError
from mlos_scheduler import convert, generation_params, rest_convert
from mlos_scheduler.core import Scheduler
from mlos_scheduler.domain import GenerateRequest, ModelInfo
from mlos_scheduler.errors import BadRequest
from mlos_scheduler.front_door import Seen
from mlos_scheduler.generation_door import whole_text
from mlos_scheduler.generation_params import SAMPLING, SAMPLING_KEYS, STREAM, TEXT_INPUT, TEXT_OUTPUT

log = logging.getLogger(__name__)

FIELDS = ("id", TEXT_INPUT, STREAM, SAMPLING, "parameters")
Enter = Callable[[web.Request, str], Seen]  # the front door's watch (rest.py)


def _bytes_element(text: str) -> bytes:
    """One BYTES element; a lone surrogate (JSON "\\ud800") travels as its bytes, so the UTF-8
    check names its offset instead of failing here."""
    data = text.encode("utf-8", "surrogatepass")
    return struct.pack("<I", len(data)) + data


def generate_message(body: dict[str, Any], name: str, version: str) -> tuple[pb.ModelInferRequest, dict[str, Any]]:
    """The request as the infer message convert.infer_request decodes, and the sampling keys
    given in `parameters` (to be checked by generation_params.sampling)."""
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise BadRequest(f"generate request has unknown fields {unknown}; accepted: {list(FIELDS)}")
    msg = pb.ModelInferRequest(model_name=name, model_version=version)
    request_id = body.get("id", "")
    if not isinstance(request_id, str):
        raise BadRequest("id must be a string")
    msg.id = request_id
    text = body.get(TEXT_INPUT)
    if not isinstance(text, str):
        raise BadRequest(f"{TEXT_INPUT} must be a string (the prompt), got {json.dumps(text)[:40]}")
    msg.inputs.add(name=TEXT_INPUT, datatype="BYTES", shape=[1])
    msg.raw_input_contents.append(_bytes_element(text))
    params = rest_convert.json_object(body.get("parameters"), "parameters")
    sampling = {k: v for k, v in params.items() if k in SAMPLING_KEYS}
    if STREAM in body or STREAM in params:
        flag = body.get(STREAM, params.get(STREAM))
        if not isinstance(flag, bool):
            raise BadRequest(f"{STREAM} must be true or false, got {json.dumps(flag)[:40]}")
        msg.inputs.add(name=STREAM, datatype="BOOL", shape=[1])
        msg.raw_input_contents.append(b"\x01" if flag else b"\x00")
    if SAMPLING in body:
        if sampling:
            raise BadRequest(
                f"sampling keys {sorted(sampling)} are given both in parameters and with {SAMPLING}; give them once"
            )
        source = body[SAMPLING]
        if not isinstance(source, str):
            raise BadRequest(f"{SAMPLING} must be a string holding a JSON object, got {type(source).__name__}")
        msg.inputs.add(name=SAMPLING, datatype="BYTES", shape=[1])
        msg.raw_input_contents.append(_bytes_element(source))
    for key, value in params.items():
        if key not in SAMPLING_KEYS and key != STREAM:
            msg.parameters[key].CopyFrom(rest_convert.infer_parameter(key, value))
    return msg, sampling


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


class GenerateRoutes:
    """The generate routes on the scheduler core; `enter` is the REST front door's watch."""

    def __init__(self, core: Scheduler, enter: Enter) -> None:
        self._core = core
        self._enter = enter

    def routes(self) -> list[web.RouteDef]:
        table = []
        for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
            table += [web.post(f"{base}/generate", self.generate), web.post(f"{base}/generate_stream", self.generate_stream)]
        return table

    async def _request(self, request: web.Request, seen: Seen) -> tuple[ModelInfo, GenerateRequest]:
        name, version = request.match_info["name"], request.match_info.get("version", "")
        msg, sampling = generate_message(rest_convert.body_object(await request.read()), name, version)
        req = convert.infer_request(msg, None, asyncio.get_running_loop().time())
        seen.decoded(req)
        model = await self._core.describe(name, version)
        if not model.generates:
            raise BadRequest(
                f"model {name!r} does not generate text (its task is {model.task!r}); "
                f"send its inputs to /v2/models/{name}/infer"
            )
        gen = generation_params.generate_request(model, req, msg.parameters)
        if sampling:
            gen.sampling = generation_params.sampling(sampling, model, where="parameters")
        return model, gen

    def _answer(self, model: ModelInfo, gen: GenerateRequest, text: bytes) -> dict[str, Any]:
        out: dict[str, Any] = {"model_name": model.name, "model_version": str(model.version)}
        if gen.id:
            out["id"] = gen.id
        out[TEXT_OUTPUT] = text.decode("utf-8", "replace")
        return out

    async def generate(self, request: web.Request) -> web.Response:
        with self._enter(request, request.match_info["name"]) as seen:
            model, gen = await self._request(request, seen)
            gen.stream = False
            text = await whole_text(self._core, gen)
        return web.json_response(self._answer(model, gen, text))

    async def generate_stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        with self._enter(request, request.match_info["name"]) as seen:
            model, gen = await self._request(request, seen)
            gen.stream = True
            try:
                async with contextlib.aclosing(self._core.generate(gen)) as chunks:
                    async for chunk in chunks:
                        if not chunk.text:
                            continue
                        if not response.prepared:
                            await response.prepare(request)
                        await response.write(_event(self._answer(model, gen, chunk.text)))
            except MlosError as exc:
                if not response.prepared:
                    raise  # nothing sent yet: an ordinary error answer
                await response.write(_event({"error": convert.stream_error(exc)}))
            except ConnectionResetError:  # the client went away: its generation is closed already
                log.info("generate_stream client of %r request %r went away", model.name, gen.id)
                return response
        if not response.prepared:
            await response.prepare(request)
        await response.write_eof()
        return response
