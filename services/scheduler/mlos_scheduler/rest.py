"""KServe v2 / Triton REST on the scheduler's event loop (aiohttp), beside the gRPC front door.

Handlers call the same domain core (and the gRPC servicer's read-only answers, so both
protocols agree on readiness, metadata, config and statistics); there is no extra hop. Typed
errors become JSON `{"error": "..."}` with the HTTP status of their gRPC code; aiohttp's own
refusals (unknown route, wrong method, body over the message limit) are answered the same way.
aiohttp is used rather than uvicorn because it runs inside an existing loop without touching
the process's signal handlers, which `run_until_signalled` owns.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, TracerProvider

from mlos.inference import grpc_service_pb2 as pb
from mlos_common.access import rest_roles_for
from mlos_common.errors import InvalidArgument, MlosError
from mlos_common.http_auth import Guard, http_guard
from mlos_common.shm import ShmRegistry
from mlos_executor.client import ExecutorClient
from mlos_scheduler import convert, generation_door, rest_convert
from mlos_scheduler.config import SchedulerSettings
from mlos_scheduler.core import Scheduler
from mlos_scheduler.domain import InferResult
from mlos_scheduler.front_door import CLIENT_HEADER, NOT_SEEN, Seen
from mlos_scheduler.rest_generate import GenerateRoutes
from mlos_scheduler.rest_shm import ShmRoutes
from mlos_scheduler.servicer import SERVER_NAME, SERVER_VERSION, InferenceServicer
from mlos_scheduler.shm_convert import ShmRequest

log = logging.getLogger(__name__)

HTTP_STATUS = {  # gRPC code -> HTTP status (google.rpc's mapping; Triton answers 400 for most)
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409, "ABORTED": 409, "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499,
    "UNIMPLEMENTED": 501, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504, "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
}
REST_EXTENSIONS = ["binary_tensor_data"]
RuntimeModes = Callable[[], Awaitable[dict[str, str]]]  # executor address -> runtime mode
Observe = Callable[[str, int, float], None]  # (route, HTTP status, seconds)


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _ok_or_400(ready: bool) -> web.Response:
    return web.Response(status=200 if ready else 400)


class RestApp:
    """The routes. `modes` asks the executors for their runtime mode (for GET /health); `shm` is
    the process's shared memory registry, the gRPC front door's (a new one when not given)."""

    def __init__(self, core: Scheduler, modes: RuntimeModes, shm: ShmRegistry | None = None) -> None:
        self._core = core
        self._shm = shm if shm is not None else ShmRegistry()
        self._servicer = InferenceServicer(core, self._shm)
        self._modes = modes

    def routes(self) -> list[web.RouteDef]:
        get, post = web.get, web.post
        table = [
            get("/health", self.health),
            get("/v2/health/live", self.live),
            get("/v2/health/ready", self.ready),
            get("/v2", self.server_metadata),
            get("/v2/models/stats", self.stats),
            post("/v2/repository/index", self.index),
            post("/v2/repository/models/{name}/load", self.load),
            post("/v2/repository/models/{name}/unload", self.unload),
        ]
        for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
            table += [
                get(base, self.model_metadata),
                get(f"{base}/ready", self.model_ready),
                get(f"{base}/config", self.model_config),
                get(f"{base}/stats", self.stats),
                post(f"{base}/infer", self.infer),
            ]
        return table + GenerateRoutes(self._core, self._enter).routes() + ShmRoutes(self._shm).routes()

    async def health(self, request: web.Request) -> web.Response:
        """Suite summary: 200 when ready (503 otherwise), the executors' runtime mode, the models served."""
        ready = (await self._servicer.ServerReady(pb.ServerReadyRequest(), None)).ready
        modes = await self._modes()
        distinct = sorted(set(modes.values()) - {"unknown"})
        body = {
            "status": "ok" if ready else "not_ready",
            "runtime_mode": distinct[0] if len(distinct) == 1 else ("mixed" if distinct else "unknown"),
            "executors": [{"addr": addr, "runtime_mode": mode} for addr, mode in modes.items()],
            "models": [
                {"name": s.model.name, "version": str(s.model.version), "max_batch_size": s.model.max_batch_size}
                for s in sorted(self._core.served.values(), key=lambda s: (s.model.name, s.model.version))
            ],
        }
        return web.json_response(body, status=200 if ready else 503)

    async def live(self, request: web.Request) -> web.Response:
        return _ok_or_400((await self._servicer.ServerLive(pb.ServerLiveRequest(), None)).live)

    async def ready(self, request: web.Request) -> web.Response:
        return _ok_or_400((await self._servicer.ServerReady(pb.ServerReadyRequest(), None)).ready)

    async def server_metadata(self, request: web.Request) -> web.Response:
        meta = await self._servicer.ServerMetadata(pb.ServerMetadataRequest(), None)
        extensions = [*meta.extensions, *REST_EXTENSIONS]
        return web.json_response({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": extensions})

    async def model_metadata(self, request: web.Request) -> web.Response:
        name, version = _model(request)
        reply = await self._servicer.ModelMetadata(pb.ModelMetadataRequest(name=name, version=version), None)
        return web.json_response(rest_convert.proto_json(reply))

    async def model_ready(self, request: web.Request) -> web.Response:
        name, version = _model(request)
        return _ok_or_400((await self._servicer.ModelReady(pb.ModelReadyRequest(name=name, version=version), None)).ready)

    async def model_config(self, request: web.Request) -> web.Response:
        name, version = _model(request)
        reply = await self._servicer.ModelConfig(pb.ModelConfigRequest(name=name, version=version), None)
        return web.json_response(rest_convert.proto_json(reply.config))

    async def stats(self, request: web.Request) -> web.Response:
        name, version = _model(request)
        reply = await self._servicer.ModelStatistics(pb.ModelStatisticsRequest(name=name, version=version), None)
        return web.json_response(rest_convert.proto_json(reply))

    async def index(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        ready = body.get("ready", False)
        if not isinstance(ready, bool):
            raise InvalidArgument("'ready' must be true or false")
        reply = await self._servicer.RepositoryIndex(pb.RepositoryIndexRequest(ready=ready), None)
        return web.json_response([rest_convert.proto_json(m) for m in reply.models])

    async def load(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        params = rest_convert.json_object(body.get("parameters"), "parameters")
        name = request.match_info["name"]
        override = convert.load_override(rest_convert.load_request(name, params))
        await self._core.load(name, 0, None, override.apply if override else None)
        return web.Response(status=200)

    async def unload(self, request: web.Request) -> web.Response:
        await _json_body(request)  # validated; unload_dependents has no meaning here (no ensembles)
        await self._core.unload(request.match_info["name"])
        return web.Response(status=200)

    def _enter(self, request: web.Request, name: str) -> Seen:
        """The front door's watch over one inference request, entered before its body is read: a
        refused client costs nothing more."""
        door = self._core.door
        if not door.active:
            return NOT_SEEN
        return door.enter(request.headers.get(CLIENT_HEADER), request.remote or "", name, request.content_length or 0)

    async def infer(self, request: web.Request) -> web.Response:
        name, version = _model(request)
        with self._enter(request, name) as seen:
            body = await request.read()
            header, binary = rest_convert.split_body(body, request.headers.get(rest_convert.HEADER_LENGTH))
            msg, plan = rest_convert.infer_request(header, binary, name, version)
            with ShmRequest(self._shm, msg) as shm:  # leases the regions the request names until it ends
                req = convert.infer_request(msg, None, asyncio.get_running_loop().time(), shm.input_tensor)
                seen.decoded(req)
                req.output_windows = shm.output_windows()
                answer = await generation_door.infer_or_model(self._core, req)
                if isinstance(answer, InferResult):
                    result, placed = answer, shm.write_outputs(answer)
                else:  # a generation model: the whole text
                    result, placed = await generation_door.whole_result(self._core, answer, req, msg.parameters), None
        out, header_length = rest_convert.infer_response(result, plan, placed)
        if header_length is None:
            return web.Response(body=out, content_type="application/json")
        return web.Response(
            body=out, content_type="application/octet-stream",
            headers={rest_convert.HEADER_LENGTH: str(header_length)},
        )


def _model(request: web.Request) -> tuple[str, str]:
    return request.match_info.get("name", ""), request.match_info.get("version", "")


async def _json_body(request: web.Request) -> dict:
    return rest_convert.body_object(await request.read())


def _middleware(observe: Observe, tracer_provider: TracerProvider | None, guard: Guard | None = None):
    tracer = tracer_provider.get_tracer(__name__) if tracer_provider is not None else None

    async def answer(request: web.Request, handler, route: str) -> web.StreamResponse:
        try:
            if guard is not None:
                guard(request, route)
            return await handler(request)
        except MlosError as exc:
            return error_response(HTTP_STATUS.get(exc.code, 500), exc.message)
        except web.HTTPException as exc:  # unknown route, wrong method, body too large
            return error_response(exc.status, exc.text or exc.reason)
        except RequestPayloadError as exc:  # e.g. a Content-Encoding: gzip body that is not gzip
            return error_response(400, f"cannot read the request body: {str(exc).strip()}")
        except Exception as exc:  # noqa: BLE001 - a bug answers 500, the server goes on
            log.exception("REST %s %s failed", request.method, request.path)
            return error_response(500, f"internal error: {type(exc).__name__}")

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        start = time.perf_counter()
        route_info = request.match_info.route.resource
        route = route_info.canonical if route_info is not None else "unmatched"
        if tracer is None:
            response = await answer(request, handler, route)
        else:
            with tracer.start_as_current_span(
                f"{request.method} {route}", context=propagate.extract(request.headers), kind=SpanKind.SERVER
            ) as span:
                response = await answer(request, handler, route)
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", response.status)
        observe(route, response.status, time.perf_counter() - start)
        return response

    return middleware


class RestServer:
    """Binds (no SO_REUSEPORT: a taken port is an error), serves until close()."""

    def __init__(
        self, app: RestApp, *, max_body_bytes: int, observe: Observe, tracer_provider: TracerProvider | None = None,
        guard: Guard | None = None,
    ) -> None:
        self._app = web.Application(
            client_max_size=max_body_bytes, middlewares=[_middleware(observe, tracer_provider, guard)]
        )
        self._app.add_routes(app.routes())
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int, shutdown_timeout_s: float = 10.0, reuse_port: bool = False) -> int:
        """Starts serving on host:port (0 = any free port); returns the bound port. SO_REUSEPORT
        only for a worker of the multi-worker supervisor (settings.reuse_port)."""
        try:
            sock = socket.create_server((host, port), reuse_port=reuse_port)
        except OSError as exc:
            raise RuntimeError(f"cannot bind the REST port {host}:{port}: {exc.strerror or exc}") from None
        self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=shutdown_timeout_s)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        bound = sock.getsockname()[1]
        log.info("KServe v2 REST on http://%s:%d", host, bound)
        return bound

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def executor_modes(clients: list[ExecutorClient], timeout_s: float = 1.0) -> RuntimeModes:
    """Asks each executor's Status RPC for its runtime mode; "unknown" where it does not answer."""

    async def one(client: ExecutorClient) -> str:
        try:
            return (await client.status(timeout_s=timeout_s)).runtime_mode or "unknown"
        except MlosError:
            return "unknown"

    async def modes() -> dict[str, str]:
        found = await asyncio.gather(*(one(c) for c in clients))
        return {c.addr: mode for c, mode in zip(clients, found)}

    return modes


async def start_rest(
    settings: SchedulerSettings,
    core: Scheduler,
    tracer_provider: TracerProvider | None = None,
    shm: ShmRegistry | None = None,
) -> tuple[int, Callable[[], Awaitable[None]]]:
    """Serves REST on settings.http_port; returns the bound port and the closer (stop serving, then
    close the status channels). Spans are made only with a tracer provider (there is one only
    when traces are exported). Pass the gRPC front door's `shm` registry so regions registered
    over one protocol serve the other; the caller closes it."""
    clients = [ExecutorClient(addr, settings=settings) for addr in settings.executor_list()]
    server = RestServer(
        RestApp(core, executor_modes(clients), shm),
        max_body_bytes=settings.max_message_bytes,
        observe=core.stats.http_request,
        tracer_provider=tracer_provider,
        guard=http_guard(settings, rest_roles_for),
    )

    async def close_clients() -> None:
        for client in clients:
            await client.close()

    try:
        port = await server.start(settings.host, settings.http_port, settings.shutdown_grace_s, settings.reuse_port)
    except BaseException:
        await close_clients()
        raise

    async def close() -> None:
        await server.close()
        await close_clients()

    return port, close
