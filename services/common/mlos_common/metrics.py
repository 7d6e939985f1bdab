"""Prometheus metrics: one CollectorRegistry per service (no process-global registry)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

log = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


@dataclass
class GrpcMetrics:
    """Per-RPC counters and latency, labelled like go-grpc-prometheus."""

    registry: CollectorRegistry
    handled: Counter = field(init=False)
    handling_seconds: Histogram = field(init=False)

    def __post_init__(self) -> None:
        self.handled = Counter(
            "mlos_grpc_server_handled",
            "RPCs completed on the server, by method and status code.",
            ["grpc_method", "grpc_code"],
            registry=self.registry,
        )
        self.handling_seconds = Histogram(
            "mlos_grpc_server_handling_seconds",
            "Time from RPC start to its last response, by method.",
            ["grpc_method"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._handled_children: dict[tuple[str, str], Any] = {}
        self._seconds_children: dict[str, Any] = {}

    def observe(self, method: str, code: str, seconds: float) -> None:
        key = (method, code)
        counter = self._handled_children.get(key)
        if counter is None:
            counter = self._handled_children[key] = self.handled.labels(method, code)
        counter.inc()
        hist = self._seconds_children.get(method)
        if hist is None:
            hist = self._seconds_children[method] = self.handling_seconds.labels(method)
        hist.observe(seconds)


def start_metrics_server(registry: CollectorRegistry, host: str, port: int) -> tuple[Any, int]:
    """Serves /metrics over HTTP on a daemon thread; returns (server, bound port)."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    bound = server.server_port
    log.info("metrics on http://%s:%d/metrics", host, bound)
    return server, bound
