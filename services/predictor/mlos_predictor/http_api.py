"""The seed ML daemon's HTTP API (../shared/seeds/003) on the predictor's event loop (aiohttp).

One implementation, two doors: every route answers from the same Engine as gRPC, and rows are
validated by the same code (rows.parse_row). Routes (JSON in and out):

  POST /api/ml/predict/{kind}          body: the features by name, {"error_rate": 0.4, ...}
                                       (or an array in the kind's feature order)
  POST /api/ml/predict/{kind}/batch    body: {"features": [row, ...]}, each row as above
       both take ?no_cache=true       -> {"success": true, "prediction(s)": ..., "latency_ms": ...}
  GET  /api/ml/metrics[/{kind}]        the seed's metric names (modelName, totalInferences, ...)
  POST /api/ml/metrics/reset           ?kind=K or {"kind": K}; every kind without one
  GET  /api/ml/cache/stats
  POST /api/ml/cache/clear             ?kind=K or {"kind": K}; every kind without one
  GET  /health                         200 when every kind's model answers a probe row, else 503

Errors are {"success": false, "error": "..."}: 400 for bad input (naming the row and the
feature), 404 for an unknown kind or route, 405 for a wrong method. aiohttp rather than another
framework because it runs inside the loop the gRPC server already uses (as the scheduler's REST).
"""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any

import numpy as np
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from mlos_common.bootstrap import StartupError
from mlos_common.errors import MlosError
from mlos_common.http_auth import Guard, canonical_route
from mlos_common.service_main import Closer
from mlos_predictor.cache import CacheStats
from mlos_predictor.engine import Engine, Result
from mlos_predictor.errors import BadFeatures, UnknownKind
from mlos_predictor.kind_metrics import KindMetrics
from mlos_predictor.kinds import KINDS, KindSpec
from mlos_predictor.rows import check_count, kinds_of, parse_row, rows_array, spec_for

log = logging.getLogger(__name__)

STATUS_OF_CODE = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 429,
                  "UNAVAILABLE": 503, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403}  # fmt: skip


def _ok(body: dict[str, Any]) -> web.Response:
    return web.json_response({"success": True, **body})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"success": False, "error": message}, status=status)


def prediction_json(spec: KindSpec, r: Result) -> dict[str, Any]:
    return {"kind": spec.kind, "value": r.value, "unit": spec.unit, "reason": r.reason, "cached": r.cached,
            "modelVersion": r.model_version}  # fmt: skip


def metrics_json(m: KindMetrics) -> dict[str, Any]:
    """One kind's metrics under the seed daemon's names."""
    return {
        "modelName": m.kind, "totalInferences": m.count, "cacheHits": m.cache_hits, "cacheMisses": m.cache_misses,
        "averageLatencyMs": m.mean_ms, "minLatencyMs": m.min_ms, "maxLatencyMs": m.max_ms,
        "p50LatencyMs": m.p50_ms, "p95LatencyMs": m.p95_ms, "p99LatencyMs": m.p99_ms,
    }  # fmt: skip


def cache_json(s: CacheStats) -> dict[str, Any]:
    return {"size": s.size, "capacity": s.capacity, "ttlMs": s.ttl_ms, "hits": s.hits, "misses": s.misses,
            "expired": s.expired, "evicted": s.evicted, "hitRate": s.hit_rate}  # fmt: skip


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadFeatures(f"the request body is not valid JSON: {exc}") from None


def _row(spec: KindSpec, item: Any, where: str = "") -> list[float]:
    if isinstance(item, dict):
        return parse_row(spec, None, item, where)
    if isinstance(item, list):
        return parse_row(spec, item, None, where)
    raise BadFeatures(
        f"{where}a {spec.kind} feature row is a JSON object by name ({', '.join(spec.names)}) or an array in that"
        f" order, got {type(item).__name__}"
    )


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "false").lower()
    if value not in ("true", "1", "false", "0", ""):
        raise BadFeatures(f"query parameter {name!r} is true or false, got {value!r}")
    return value in ("true", "1")


async def _kinds(request: web.Request) -> tuple[str, ...]:
    """The kinds a reset or clear applies to: ?kind=K, a body {"kind": K}, or every kind."""
    body = await _body(request)
    kind = request.query.get("kind", "")
    if body is not None:
        if not isinstance(body, dict) or not isinstance(body.get("kind", ""), str):
            raise BadFeatures('the body, if any, is {"kind": "<kind>"} (no body = every kind)')
        kind = body.get("kind", kind)
    return kinds_of(kind)


class HttpApi:
    """The routes over one Engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def routes(self) -> list[web.RouteDef]:
        get, post = web.get, web.post
        return [
            post("/api/ml/predict/{kind}", self.predict),
            post("/api/ml/predict/{kind}/batch", self.predict_batch),
            get("/api/ml/metrics", self.metrics),
            post("/api/ml/metrics/reset", self.reset_metrics),
            get("/api/ml/metrics/{kind}", self.kind_metrics),
            get("/api/ml/cache/stats", self.cache_stats),
            post("/api/ml/cache/clear", self.clear_cache),
            get("/health", self.health),
        ]

    async def predict(self, request: web.Request) -> web.Response:
        start = time.perf_counter()
        spec, no_cache = spec_for(request.match_info["kind"]), _flag(request, "no_cache")
        row = _row(spec, await _body(request))
        (r,) = self._engine.predict(spec.kind, rows_array([row]), no_cache=no_cache)
        return _ok({"prediction": prediction_json(spec, r), "latency_ms": (time.perf_counter() - start) * 1000.0})

    async def predict_batch(self, request: web.Request) -> web.Response:
        start = time.perf_counter()
        spec, no_cache = spec_for(request.match_info["kind"]), _flag(request, "no_cache")
        body = await _body(request)
        items = body.get("features") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise BadFeatures('a batch body is {"features": [row, ...]}, each row an object by name or an array')
        check_count(spec, len(items), self._engine.max_batch)
        rows = rows_array([_row(spec, item, f"features[{i}]: ") for i, item in enumerate(items)])
        results = self._engine.predict(spec.kind, rows, no_cache=no_cache)
        return _ok({
            "predictions": [prediction_json(spec, r) for r in results],
            "latency_ms": (time.perf_counter() - start) * 1000.0,
        })  # fmt: skip

    async def metrics(self, request: web.Request) -> web.Response:
        return _ok({"metrics": {m.kind: metrics_json(m) for m in self._engine.metrics.snapshot(KINDS)}})

    async def kind_metrics(self, request: web.Request) -> web.Response:
        (m,) = self._engine.metrics.snapshot([spec_for(request.match_info["kind"]).kind])
        return _ok({"metrics": metrics_json(m)})

    async def reset_metrics(self, request: web.Request) -> web.Response:
        kinds = await _kinds(request)
        self._engine.metrics.reset(kinds)
        return _ok({"reset": list(kinds)})

    async def cache_stats(self, request: web.Request) -> web.Response:
        return _ok({"caches": {s.kind: cache_json(s) for s in self._engine.cache_stats(KINDS)}})

    async def clear_cache(self, request: web.Request) -> web.Response:
        kinds = await _kinds(request)
        return _ok({"cleared": self._engine.clear_cache(kinds), "kinds": list(kinds)})

    async def health(self, request: web.Request) -> web.Response:
        """Healthy when each kind's served model answers a finite value for its lowest valid row
        (every feature at its lower bound); bypasses the cache and the metrics."""
        kinds: dict[str, dict[str, Any]] = {}
        for kind, slot in self._engine.slots.items():
            entry: dict[str, Any] = {"source": slot.card.source, "version": slot.card.version}
            try:
                value = slot.model.predict(np.array([[f.lo for f in slot.spec.features]]))
                entry["ok"] = bool(value.shape == (1,) and np.isfinite(value).all())
            except Exception as exc:  # noqa: BLE001 - a broken model is what this reports
                entry["ok"], entry["error"] = False, f"{type(exc).__name__}: {exc}"
            kinds[kind] = entry
        healthy = all(e["ok"] for e in kinds.values())
        body = {"status": "healthy" if healthy else "unhealthy", "service": "mlos-predictor", "kinds": kinds}
        return web.json_response(body, status=200 if healthy else 503)


def _middleware(requests: Counter | None, guard: Guard | None = None):
    async def answer(request: web.Request, handler) -> web.StreamResponse:
        try:
            if guard is not None:
                guard(request, canonical_route(request))
            return await handler(request)
        except UnknownKind as exc:
            return _error(404, exc.message)
        except MlosError as exc:
            return _error(STATUS_OF_CODE.get(exc.code, 500), exc.message)
        except web.HTTPException as exc:  # unknown route, wrong method, body too large
            return _error(exc.status, f"{exc.reason}: {request.method} {request.path}")
        except Exception as exc:  # noqa: BLE001 - a bug answers 500, the server goes on
            log.exception("HTTP %s %s failed", request.method, request.path)
            return _error(500, f"internal error: {type(exc).__name__}")

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        response = await answer(request, handler)
        if requests is not None:
            requests.labels(canonical_route(request), str(response.status)).inc()
        return response

    return middleware


async def start_http(
    engine: Engine,
    host: str,
    port: int,
    *,
    max_body_bytes: int = 16 << 20,
    shutdown_timeout_s: float = 10.0,
    registry: CollectorRegistry | None = None,
    guard: Guard | None = None,
) -> tuple[int, Closer]:
    """Serves the API on host:port (0 = any free port); returns the bound port and the closer.
    A port in use is a StartupError naming it (no SO_REUSEPORT). `guard`: the bearer-token check
    (mlos_common.http_auth; None = open)."""
    requests = None
    if registry is not None:
        requests = Counter("mlos_predictor_http_requests", "HTTP API requests by route and status.",
                           ["route", "status"], registry=registry)  # fmt: skip
    app = web.Application(client_max_size=max_body_bytes, middlewares=[_middleware(requests, guard)])
    app.add_routes(HttpApi(engine).routes())
    try:
        sock = socket.create_server((host, port))
    except OSError as exc:
        raise StartupError(
            f"cannot listen on {host}:{port} (predictor HTTP API): {exc.strerror or exc}; stop the process "
            "holding it or set MLOS_PREDICTOR_HTTP_PORT (0 = any free port, -1 = off)"
        ) from None
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout_s)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    bound = sock.getsockname()[1]
    log.info("seed ML daemon HTTP API on http://%s:%d/api/ml", host, bound)
    return bound, runner.cleanup
