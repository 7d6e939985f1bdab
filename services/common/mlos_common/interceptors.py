"""The server interceptor chain: tracing (OpenTelemetry) -> metrics -> errors.

Wrapped handlers are built once per method and cached, so the per-call cost is one extra
coroutine frame per interceptor.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any, Awaitable, Callable

import grpc
from grpc import aio

from mlos_common.errors import MlosError
from mlos_common.metrics import GrpcMetrics

log = logging.getLogger(__name__)

Wrapper = Callable[[Callable[..., Any], str], Callable[..., Any]]


def _rewrap(handler: grpc.RpcMethodHandler, method: str, unary: Wrapper, stream: Wrapper) -> grpc.RpcMethodHandler:
    kw = dict(request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
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

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        cached = self._cache.get(details.method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _rewrap(handler, details.method, self.wrap_unary, self.wrap_stream)
        self._cache[details.method] = (handler, wrapped)
        return wrapped

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
            except BaseException:
                code = _code_name(context)
                raise
            finally:
                observe(method, code, time.perf_counter() - start)

        return wrapped


class ErrorInterceptor(_CachingInterceptor):
    """Maps MlosError to its status; anything unexpected becomes INTERNAL and is logged."""

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
