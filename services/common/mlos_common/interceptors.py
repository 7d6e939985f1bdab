"""The server interceptor chain: tracing (OpenTelemetry) -> metrics -> errors.

Wrapped handlers are built once per method and cached, so the per-call cost is one extra
coroutine frame per interceptor.

The error interceptor (innermost) also owns request parsing: it gives grpc a handler without a
request deserializer, so requests arrive as bytes, and parses them itself (once, as grpc would)
inside its error mapping. A body that is not a valid protobuf gets INVALID_ARGUMENT naming the
method and message type, where grpc.aio would answer UNKNOWN on its own.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from mlos_common.errors import InvalidArgument, MlosError
from mlos_common.metrics import GrpcMetrics

log = logging.getLogger(__name__)

Wrapper = Callable[[Callable[..., Any], str], Callable[..., Any]]
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]]


def _rewrap(
    handler: grpc.RpcMethodHandler, method: str, unary: Wrapper, stream: Wrapper, *, keep_deserializer: bool = True
) -> grpc.RpcMethodHandler:
    deserializer = handler.request_deserializer if keep_deserializer else None
    kw = dict(request_deserializer=deserializer, response_serializer=handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary, method), **kw)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary, method), **kw)
    # A streaming handler is either an async generator or a coroutine that sends with
    # `await context.write(...)` (grpc_health's Watch is one); the latter wraps like a unary call.
    behavior = handler.unary_stream or handler.stream_stream
    wrap = stream if inspect.isasyncgenfunction(behavior) else unary
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap(behavior, method), **kw)
    return grpc.stream_stream_rpc_method_handler(wrap(behavior, method), **kw)


class _CachingInterceptor(aio.ServerInterceptor):
    def __init__(self) -> None:
        self._cache: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation: Continuation, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        cached = self._cache.get(details.method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self.rewrap(handler, details.method)
        self._cache[details.method] = (handler, wrapped)
        return wrapped

    def rewrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        return _rewrap(handler, method, self.wrap_unary, self.wrap_stream)

    def wrap_unary(self, behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
        raise NotImplementedError

    def wrap_stream(self, behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
        raise NotImplementedError


def _code_name(context: aio.ServicerContext) -> str:
    code = context.code()
    if code is None:
        return "UNKNOWN"
    return code.name if isinstance(code, grpc.StatusCode) else str(code)


class MetricsInterceptor(_CachingInterceptor):
    """Counts every RPC by method and final status, and records its duration."""

    def __init__(self, metrics: GrpcMetrics) -> None:
        super().__init__()
        self._metrics = metrics

    def wrap_unary(self, behavior, method):
        observe = self._metrics.observe

        async def wrapped(request, context):
            start = time.perf_counter()
            code = "OK"
            try:
                return await behavior(request, context)
            except asyncio.CancelledError:
                code = "CANCELLED"  # the client went away: not a server failure
                raise
            except BaseException:
                code = _code_name(context)
                raise
            finally:
                observe(method, code, time.perf_counter() - start)

        return wrapped

    def wrap_stream(self, behavior, method):
        observe = self._metrics.observe

        async def wrapped(request, context):
            start = time.perf_counter()
            code = "OK"
            try:
                async for item in behavior(request, context):
                    yield item
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except BaseException:
                code = _code_name(context)
                raise
            finally:
                observe(method, code, time.perf_counter() - start)

        return wrapped


Parse = Callable[[bytes], Any]


def _parser(parse: Parse, method: str) -> Parse:
    """`parse` raising InvalidArgument (naming the method and type) on a body that is not valid."""
    kind = getattr(getattr(getattr(parse, "__self__", None), "DESCRIPTOR", None), "full_name", "protobuf message")

    def parsed(raw: bytes) -> Any:
        try:
            return parse(raw)
        except Exception as exc:  # noqa: BLE001 - DecodeError, or anything a deserializer raises
            raise InvalidArgument(
                f"{method}: the request is not a valid {kind} ({len(raw)} bytes): {exc or type(exc).__name__}"
            ) from None

    return parsed


async def _parsed_stream(requests: AsyncIterator[bytes], parse: Parse) -> AsyncIterator[Any]:
    async for raw in requests:
        yield parse(raw)


def _parsing(behavior: Callable[..., Any], parse: Parse, streaming_request: bool) -> Callable[..., Any]:
    """The behavior, fed parsed requests. A bad unary body raises before the behavior starts."""
    if streaming_request:
        return lambda requests, context: behavior(_parsed_stream(requests, parse), context)
    return lambda raw, context: behavior(parse(raw), context)


class ErrorInterceptor(_CachingInterceptor):
    """Maps MlosError to its status; anything unexpected becomes INTERNAL and is logged.
    Parses requests itself, so a body that is not valid protobuf is INVALID_ARGUMENT."""

    def rewrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        if handler.request_deserializer is None:
            return super().rewrap(handler, method)
        parse = _parser(handler.request_deserializer, method)
        streaming_request = bool(handler.stream_unary or handler.stream_stream)

        def unary(behavior, method):
            return self.wrap_unary(_parsing(behavior, parse, streaming_request), method)

        def stream(behavior, method):
            return self.wrap_stream(_parsing(behavior, parse, streaming_request), method)

        return _rewrap(handler, method, unary, stream, keep_deserializer=False)

    async def _abort(self, context: aio.ServicerContext, exc: Exception, method: str) -> None:
        if isinstance(exc, MlosError):
            await context.abort(grpc.StatusCode[exc.code], exc.message)
        log.exception("unhandled error in %s", method, exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}: {type(exc).__name__}")

    def wrap_unary(self, behavior, method):
        async def wrapped(request, context):
            try:
                return await behavior(request, context)
            except aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - this is the one place errors become statuses
                await self._abort(context, exc, method)

        return wrapped

    def wrap_stream(self, behavior, method):
        async def wrapped(request, context):
            try:
                async for item in behavior(request, context):
                    yield item
            except aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001
                await self._abort(context, exc, method)

        return wrapped


class ArrivalInterceptor(aio.ServerInterceptor):
    """Counts RPCs as the server hands them to the application (`picked_up`). gRPC cancels, at
    shutdown, calls its transport accepted but the application has not picked up yet; the drain
    (bootstrap.settle) waits until this count stops moving before it stops the server."""

    def __init__(self) -> None:
        self.picked_up = 0

    async def intercept_service(self, continuation, handler_call_details):  # noqa: ANN001, ANN201 - grpc's signature
        if not handler_call_details.method.startswith("/grpc.health.v1.Health/"):  # probes are not work to lose
            self.picked_up += 1
        return await continuation(handler_call_details)
