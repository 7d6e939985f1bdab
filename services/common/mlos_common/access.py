"""Who may call what: the one table mapping every RPC of every service to the roles allowed.

Default deny: with auth on, a method missing from ACCESS is refused to every token, and only
the methods in OPEN_SERVICES (gRPC health, for probes; reflection, which describes the public
protos) take no token. tests/common/test_auth_rpcs.py walks every service's descriptors and
proves each method is refused without a token, refused with a role not listed here, and
reachable with one that is.

Roles: `infer` (inference clients), `admin` (operators: model control, registry writes,
statistics), `service` (MLOS services calling each other).
"""

from __future__ import annotations

ROLES = frozenset({"infer", "admin", "service"})

OPEN_SERVICES = frozenset({"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"})

_INFER = frozenset({"infer", "admin"})
_ADMIN = frozenset({"admin"})
_SERVICE = frozenset({"service"})
_SERVICE_ADMIN = frozenset({"service", "admin"})
_ANYONE = frozenset({"infer", "admin", "service"})


def _table(service: str, methods: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    return {f"/{service}/{name}": roles for name, roles in methods.items()}


ACCESS: dict[str, frozenset[str]] = {
    **_table("inference.GRPCInferenceService", {
        "ServerLive": _INFER, "ServerReady": _INFER, "ModelReady": _INFER, "ServerMetadata": _INFER,
        "ModelMetadata": _INFER, "ModelInfer": _INFER, "ModelStreamInfer": _INFER, "ModelConfig": _INFER,
        "ModelStatistics": _INFER, "RepositoryIndex": _INFER,
        "RepositoryModelLoad": _ADMIN, "RepositoryModelUnload": _ADMIN,
        # A client registers its own shared memory regions to send tensors through them.
        "SystemSharedMemoryStatus": _INFER, "SystemSharedMemoryRegister": _INFER,
        "SystemSharedMemoryUnregister": _INFER, "CudaSharedMemoryStatus": _INFER,
        "CudaSharedMemoryRegister": _INFER, "CudaSharedMemoryUnregister": _INFER,
    }),
    **_table("mlos.scheduler.v1.SchedulerAdmin", {
        "GetQueueStats": _ADMIN, "PredictDeadline": _INFER, "GetAdmissionStats": _ADMIN,
    }),
    **_table("mlos.executor.v1.Executor", {
        "LoadModel": _SERVICE, "UnloadModel": _SERVICE, "ExecuteBatch": _SERVICE, "Execute": _SERVICE,
        "Status": _SERVICE_ADMIN,
    }),
    # The predictor registers the models it learns, so registry writes are open to `service` too.
    **_table("mlos.registry.v1.Registry", {
        "RegisterModel": _SERVICE_ADMIN, "UploadModel": _SERVICE_ADMIN, "ListModels": _SERVICE_ADMIN, "GetModel": _SERVICE_ADMIN,
        "DeleteModel": _ADMIN, "FetchArtifact": _SERVICE_ADMIN, "SetAlias": _ADMIN, "DeleteAlias": _ADMIN,
        "WatchModels": _SERVICE_ADMIN,
    }),
    **_table("mlos.predictor.v1.Predictor", {
        "ReportTelemetry": _SERVICE, "WatchLatencyProfiles": _SERVICE, "GetScores": _SERVICE_ADMIN,
        "GetLatencySummary": _SERVICE_ADMIN, "Predict": _ANYONE, "PredictBatch": _ANYONE,
        "GetMetrics": _SERVICE_ADMIN, "ResetMetrics": _ADMIN, "CacheStats": _SERVICE_ADMIN,
        "ClearCache": _ADMIN, "ModelInfo": _SERVICE_ADMIN, "Train": _ADMIN,
    }),
}  # fmt: skip


# The scheduler's KServe v2 REST routes (aiohttp canonical paths): probes are open, model control
# is admin's, every other route (inference, metadata, shared memory, generate) needs `infer`.
REST_OPEN = frozenset({"/health", "/v2/health/live", "/v2/health/ready"})
REST_ADMIN = frozenset({"/v2/repository/models/{name}/load", "/v2/repository/models/{name}/unload"})


def rest_roles_for(route: str) -> frozenset[str] | None:
    """The roles that may call a REST route; None for an open one."""
    if route in REST_OPEN:
        return None
    return _ADMIN if route in REST_ADMIN else _INFER


# The predictor's seed HTTP API (/api/ml), as its gRPC twins in ACCESS.
PREDICTOR_HTTP = {
    "/api/ml/predict/{kind}": _ANYONE, "/api/ml/predict/{kind}/batch": _ANYONE,
    "/api/ml/metrics": _SERVICE_ADMIN, "/api/ml/metrics/{kind}": _SERVICE_ADMIN, "/api/ml/cache/stats": _SERVICE_ADMIN,
    "/api/ml/metrics/reset": _ADMIN, "/api/ml/cache/clear": _ADMIN,
}  # fmt: skip


def predictor_http_roles_for(route: str) -> frozenset[str] | None:
    """The roles that may call a predictor HTTP route: /health open, unknown routes nobody's."""
    return None if route == "/health" else PREDICTOR_HTTP.get(route, frozenset())


def is_open(method: str) -> bool:
    """Whether `method` ("/pkg.Service/Method") takes no token."""
    return method[1:].split("/", 1)[0] in OPEN_SERVICES


def roles_for(method: str) -> frozenset[str]:
    """The roles that may call `method`; empty (nobody) for a method not in the table."""
    return ACCESS.get(method, frozenset())
