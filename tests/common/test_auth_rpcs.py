"""Default deny, proven over the wire: every RPC in every service's descriptors, through the real
interceptor chain (build_server) with auth on.

Each method is served by a handler of its own shape that answers an empty message, so a call that
passes the auth layer ends OK; one that does not ends UNAUTHENTICATED or PERMISSION_DENIED.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import CollectorRegistry, generate_latest
from tls_testkit import ROLE_NAMES, Tokens, make_tokens

from mlos.executor.v1 import executor_pb2
from mlos.inference import grpc_service_pb2
from mlos.predictor.v1 import predictor_pb2
from mlos.registry.v1 import registry_pb2
from mlos.scheduler.v1 import scheduler_pb2
from mlos_common.access import ACCESS
from mlos_common.auth import TokenBook
from mlos_common.bootstrap import GrpcService, ServerParts, StartupError, build_server
from mlos_common.config import ServiceSettings
from mlos_common.errors import Unauthenticated
from mlos_common.metrics import GrpcMetrics

DESCRIPTORS = [grpc_service_pb2, scheduler_pb2, executor_pb2, registry_pb2, predictor_pb2]
SERVICES = [svc for module in DESCRIPTORS for svc in module.DESCRIPTOR.services_by_name.values()]
METHODS = [(f"/{svc.full_name}/{m.name}", m) for svc in SERVICES for m in svc.methods]


def _answering(method) -> grpc.RpcMethodHandler:  # noqa: ANN001 - a MethodDescriptor
    """A handler of `method`'s shape that reads what it is sent and answers one empty message."""

    async def unary(request, context):
        if method.client_streaming:
            async for _ in request:
                pass
        return b""

    async def streaming(request, context):
        await unary(request, context)
        yield b""

    make = {
        (False, False): grpc.unary_unary_rpc_method_handler, (True, False): grpc.stream_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler, (True, True): grpc.stream_stream_rpc_method_handler,
    }[(method.client_streaming, method.server_streaming)]  # fmt: skip
    return make(streaming if method.server_streaming else unary)


def _service(svc) -> GrpcService:  # noqa: ANN001 - a ServiceDescriptor
    handler = grpc.method_handlers_generic_handler(svc.full_name, {m.name: _answering(m) for m in svc.methods})
    return GrpcService(svc.full_name, lambda server: server.add_generic_rpc_handlers((handler,)))


class Served:
    def __init__(self, addr: str, tokens: Tokens, metrics: CollectorRegistry) -> None:
        self.addr, self.tokens, self.metrics = addr, tokens, metrics


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    tokens = make_tokens(tmp_path)
    metrics = CollectorRegistry()
    settings = ServiceSettings(grpc_port=0, auth_tokens_file=tokens.file)
    server, port = build_server(settings, [_service(s) for s in SERVICES], ServerParts(metrics=GrpcMetrics(metrics)))
    await server.start()
    try:
        yield Served(f"127.0.0.1:{port}", tokens, metrics)
    finally:
        await server.stop(None)


async def _call(channel: aio.Channel, path: str, method, metadata=()) -> grpc.StatusCode:  # noqa: ANN001
    """Calls `path` with an empty message (empty messages parse as any type); its final status."""
    kw = dict(request_serializer=None, response_deserializer=None)
    try:
        if method.client_streaming and method.server_streaming:
            call = channel.stream_stream(path, **kw)(iter([b""]), metadata=metadata, timeout=10)
            [_ async for _ in call]
        elif method.client_streaming:
            await channel.stream_unary(path, **kw)(iter([b""]), metadata=metadata, timeout=10)
        elif method.server_streaming:
            [_ async for _ in channel.unary_stream(path, **kw)(b"", metadata=metadata, timeout=10)]
        else:
            await channel.unary_unary(path, **kw)(b"", metadata=metadata, timeout=10)
    except aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_every_method_is_in_the_table() -> None:
    """A method missing from the access table would be refused to everyone: the table covers the
    descriptors exactly, with only known roles."""
    assert sorted(ACCESS) == sorted(path for path, _ in METHODS)
    assert all(roles and roles <= set(ROLE_NAMES) for roles in ACCESS.values())


async def test_every_rpc_denied_by_default_and_reachable_with_its_role(served: Served) -> None:
    refused, wrong_role, allowed = {}, {}, {}
    async with aio.insecure_channel(served.addr) as channel:
        for path, method in METHODS:
            refused[path] = await _call(channel, path, method)
            for role in ROLE_NAMES:
                code = await _call(channel, path, method, (served.tokens.header(role),))
                (allowed if role in ACCESS[path] else wrong_role)[(path, role)] = code
    assert set(refused.values()) == {grpc.StatusCode.UNAUTHENTICATED}, refused
    assert set(wrong_role.values()) == {grpc.StatusCode.PERMISSION_DENIED}, wrong_role
    assert set(allowed.values()) == {grpc.StatusCode.OK}, allowed
    assert len(refused) == len(METHODS) > 40
    exposition = generate_latest(served.metrics).decode()
    refused_infer = 'grpc_method="/inference.GRPCInferenceService/ModelInfer",reason="UNAUTHENTICATED"} 1.0'
    assert f"mlos_auth_denied_total{{{refused_infer}" in exposition


async def test_health_and_reflection_are_open(served: Served) -> None:
    async with aio.insecure_channel(served.addr) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        replies = [r async for r in stub.ServerReflectionInfo(iter([request]), timeout=10)]
        listed = {s.name for s in replies[0].list_services_response.service}
    assert "inference.GRPCInferenceService" in listed


BAD_HEADERS = {
    "malformed scheme": "Basic dXNlcjpwYXNz",
    "no token": "Bearer",
    "empty token": "Bearer ",
    "unknown token": "Bearer not-a-known-token-1234567",
    "token with whitespace": "Bearer {infer} extra",
    "huge header": "Bearer " + "A" * 6000,
}


@pytest.mark.parametrize("case", sorted(BAD_HEADERS))
async def test_bad_credentials_are_unauthenticated_and_not_echoed(
    served: Served, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    value = BAD_HEADERS[case].format(infer=served.tokens["infer"])
    secret = value.partition(" ")[2] or "Bearer"
    async with aio.insecure_channel(served.addr) as channel:
        stub = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(aio.AioRpcError) as info:
            await stub(b"", metadata=(("authorization", value),), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, info.value.details()
    details = info.value.details() or ""
    assert "authorization" in details or "token" in details
    for piece in (secret, served.tokens["infer"], "A" * 64):
        if len(piece) > 8:
            assert piece not in details
            assert piece not in caplog.text


@pytest.mark.parametrize("value", ["Bearer {infer}\x00", "Bearer {infer}\tx", "Bearer \x00", "Bearer {infer}\n"])
def test_control_characters_are_unauthenticated(tmp_path: Path, value: str) -> None:
    """grpc's own client refuses to send these bytes in metadata (another client might): the
    check refuses them too, without echoing the token."""
    tokens = make_tokens(tmp_path)
    book = TokenBook.load(tokens.file)
    with pytest.raises(Unauthenticated) as info:
        book.principal([("authorization", value.format(infer=tokens["infer"]))])
    assert info.value.message == "the bearer token holds whitespace or control characters"


async def test_two_authorization_headers_are_refused(served: Served) -> None:
    async with aio.insecure_channel(served.addr) as channel:
        stub = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(aio.AioRpcError) as info:
            await stub(b"", metadata=(served.tokens.header("admin"), served.tokens.header("infer")), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "more than one" in info.value.details()


async def test_valid_tokens_never_reach_logs_or_errors(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    """A wrong role is refused with a message naming the method, the roles and the token's name,
    never the token; nothing logged at any level holds a token."""
    caplog.set_level(logging.DEBUG)
    async with aio.insecure_channel(served.addr) as channel:
        stub = channel.unary_unary("/mlos.registry.v1.Registry/DeleteModel")
        with pytest.raises(aio.AioRpcError) as info:
            await stub(b"", metadata=(served.tokens.header("infer"),), timeout=10)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert info.value.details() == "/mlos.registry.v1.Registry/DeleteModel needs role admin; this token (client) has infer"
    for token in served.tokens.by_role.values():
        assert token not in info.value.details() and token not in caplog.text


BAD_FILES = {
    "missing role": ("tok-abcdefgh\n", "line 1: expected"),
    "unknown role": ("tok-abcdefgh root\n", "unknown role(s) ['root']"),
    "empty": ("# nothing\n", "holds no tokens"),
    "control character": ("tok-\x01bcdefgh infer\n", "visible ASCII"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_token_file_stops_start_up_naming_the_line(tmp_path: Path, case: str) -> None:
    text, expected = BAD_FILES[case]
    path = tmp_path / "tokens"
    path.write_text(text)
    with pytest.raises(StartupError) as info:
        build_server(ServiceSettings(grpc_port=0, auth_tokens_file=path), [], ServerParts())
    assert expected in str(info.value)
    assert "abcdefgh" not in str(info.value)


def test_an_unreadable_token_file_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="cannot read the token file"):
        build_server(ServiceSettings(grpc_port=0, auth_tokens_file=tmp_path / "absent"), [], ServerParts())


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"token_file": "absent-token"}, "MLOS_TOKEN_FILE"),
        ({"tls_cert": "absent.pem"}, "MLOS_TLS_KEY"),
        ({"tls_ca": "absent-ca.pem"}, "MLOS_TLS_CA"),
    ],
)
async def test_missing_credential_files_stop_start_up_naming_the_setting(tmp_path: Path, fields: dict, named: str) -> None:
    settings = ServiceSettings(grpc_port=0, **{k: tmp_path / v for k, v in fields.items()})
    with pytest.raises(StartupError, match=named):
        build_server(settings, [], ServerParts())


def test_a_token_may_hold_a_hash_sign(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# comment line\ntok#with#hash infer hashy\n")
    book = TokenBook.load(path)
    assert book.principal([("authorization", "Bearer tok#with#hash")]).name == "hashy"


def test_security_settings_come_from_mlos_names_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every service reads MLOS_TOKEN, MLOS_AUTH_TOKENS_FILE, MLOS_TLS_*; a bare TOKEN in the
    environment (common in CI) is never sent as a bearer token."""
    from mlos_scheduler.config import SchedulerSettings

    monkeypatch.setenv("TOKEN", "someone-elses-token")
    monkeypatch.setenv("AUTH_TOKENS_FILE", "/elsewhere")
    assert SchedulerSettings().token is None and SchedulerSettings().auth_tokens_file is None
    monkeypatch.setenv("MLOS_TOKEN", "ours")
    monkeypatch.setenv("MLOS_TLS_CA", "/etc/mlos/ca.pem")
    settings = SchedulerSettings()
    assert settings.token is not None and settings.token.get_secret_value() == "ours"
    assert str(settings.tls_ca) == "/etc/mlos/ca.pem"
    assert SchedulerSettings(token="by-name").token.get_secret_value() == "by-name"
