"""`mlos health`: one grpc.health.v1 Check, for container health checks and scripts.

`mlos health --addr HOST:PORT` or `mlos health --service NAME` (the port from that service's own
settings, i.e. the same MLOS_<NAME>_GRPC_PORT env the service reads; host 127.0.0.1); with
neither, the service named by MLOS_SERVICE (how deploy/Dockerfile's image picks one). Exit codes:
0 = SERVING, 1 = answered but not SERVING, 2 = no answer within --timeout-s. One line on stdout
says which (Docker keeps it in `docker inspect`). grpc_health_probe is not on PyPI; this is ours.
"""

from __future__ import annotations

import argparse
import importlib
import os

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mlos_common.config import ServiceSettings
from mlos_common.tls import channel_credentials

SERVICES = {  # name -> (module, settings class)
    "registry": ("mlos_registry.config", "RegistrySettings"),
    "executor": ("mlos_executor.config", "ExecutorSettings"),
    "scheduler": ("mlos_scheduler.config", "SchedulerSettings"),
    "predictor": ("mlos_predictor.config", "PredictorSettings"),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    health = sub.add_parser("health", help="one gRPC health check (exit 0 = SERVING, 1 = not serving, 2 = no answer)")
    where = health.add_mutually_exclusive_group()
    where.add_argument("--addr", help="HOST:PORT of any MLOS service")
    where.add_argument("--service", choices=sorted(SERVICES),
                       help="this host's service, port from its MLOS_* settings (default: $MLOS_SERVICE)")
    health.add_argument("--timeout-s", type=float, default=3.0)


def service_addr(service: str) -> str:
    """127.0.0.1:<grpc_port> of `service` as its own settings (env included) give it."""
    module, cls = SERVICES[service]
    settings = getattr(importlib.import_module(module), cls)()
    return f"127.0.0.1:{settings.grpc_port}"


def check(addr: str, timeout_s: float) -> tuple[int, str]:
    """(exit code, what to print) for one Check of `addr` (health needs no token; TLS as
    MLOS_TLS_CA/CERT/KEY say)."""
    credentials = channel_credentials(ServiceSettings())  # MLOS_TLS_*: a server requiring mTLS
    channel = grpc.secure_channel(addr, credentials) if credentials else grpc.insecure_channel(addr)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError as exc:
            return 2, f"{addr}: no answer ({exc.code().name}: {exc.details()})"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return (0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1), f"{addr}: {status}"


async def health(args: argparse.Namespace) -> int:
    service = args.service or os.environ.get("MLOS_SERVICE", "")
    if not (args.addr or service in SERVICES):
        print(f"mlos health: give --addr or --service, or set MLOS_SERVICE to one of {', '.join(sorted(SERVICES))}"
              f" (it is {service!r})")
        return 2
    addr = args.addr or service_addr(service)
    code, text = check(addr, args.timeout_s)
    print(text)
    return code
