"""A real registry + executor + scheduler stack with auth and mutual TLS on every hop: the services
call each other with their `service` token over mTLS (model loads fetch from the registry, batches
run on the executor), clients need a certificate from the deployment's CA and a token with the
right role, and the REST front door checks the same tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
import pytest_asyncio
from grpc import aio
from sched_testkit import Stack, assert_matches, infer_request, ort_run, response_arrays, rest_client, running_stack
from tls_testkit import Leaf, Tokens, make_ca, make_leaf, make_tokens

from mlos.inference import grpc_service_pb2 as pb
from mlos.inference import grpc_service_pb2_grpc as pbg
from mlos_cli.demo import DemoModel
from mlos_common.bootstrap import client_channel
from mlos_common.config import ServiceSettings

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Secured:
    stack: Stack
    tokens: Tokens
    ca: Path
    client: Leaf  # signed by the deployment's CA
    stranger: Leaf  # signed by another CA
    stranger_ca: Path

    def settings(self, role: str | None, leaf: Leaf | None = None, ca: Path | None = None) -> ServiceSettings:
        leaf = leaf or self.client
        token = self.tokens[role] if role else None
        return ServiceSettings(tls_ca=ca or self.ca, tls_cert=leaf.cert_path, tls_key=leaf.key_path, token=token)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def secured(tmp_path_factory: pytest.TempPathFactory, demo: dict[str, DemoModel]) -> AsyncIterator[Secured]:
    root = tmp_path_factory.mktemp("secured")
    ca = make_ca(root, "mlos")
    server = make_leaf(root, ca, "services")
    other_ca = make_ca(root, "other")
    tokens = make_tokens(root)
    security = dict(
        auth_tokens_file=tokens.file, token=tokens["service"],
        tls_cert=server.cert_path, tls_key=server.key_path, tls_ca=ca.cert_path,
    )  # fmt: skip
    iris = {"iris": demo["iris"]}
    async with running_stack(root, iris, load=("iris",), security=security, client_token=tokens["admin"]) as stack:
        yield Secured(
            stack, tokens, ca.cert_path, make_leaf(root, ca, "client"), make_leaf(root, other_ca, "stranger"),
            other_ca.cert_path,
        )  # fmt: skip


async def _infer(settings: ServiceSettings, secured: Secured) -> pb.ModelInferResponse:
    iris = secured.stack.models["iris"]
    async with client_channel(secured.stack.addr, settings) as channel:
        return await pbg.GRPCInferenceServiceStub(channel).ModelInfer(
            infer_request("iris", iris.sample_inputs(batch=2, seed=3)), timeout=30
        )


async def test_the_stack_serves_over_mtls_with_service_tokens(secured: Secured) -> None:
    """Loading iris (scheduler -> registry, executor -> registry fetch) and running it (scheduler ->
    executor stream) crossed mTLS with the service token; an infer token runs it again."""
    iris = secured.stack.models["iris"]
    reply = await _infer(secured.settings("infer"), secured)
    assert_matches(response_arrays(reply), ort_run(iris, iris.sample_inputs(batch=2, seed=3)))
    listed = await secured.stack.registry.list("iris")
    assert [m.name for m in listed] == ["iris"]


async def test_an_infer_token_cannot_load_models(secured: Secured) -> None:
    async with client_channel(secured.stack.addr, secured.settings("infer")) as channel:
        with pytest.raises(aio.AioRpcError) as info:
            await pbg.GRPCInferenceServiceStub(channel).RepositoryModelLoad(
                pb.RepositoryModelLoadRequest(model_name="iris"), timeout=30
            )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "RepositoryModelLoad needs role admin" in info.value.details()


async def test_no_token_over_mtls_is_unauthenticated(secured: Secured) -> None:
    with pytest.raises(aio.AioRpcError) as info:
        await _infer(secured.settings(None), secured)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("client", ["no certificate", "another CA's certificate", "plaintext"])
async def test_clients_without_a_certificate_of_the_ca_are_refused(secured: Secured, client: str) -> None:
    """The handshake fails before any RPC: the call never reaches a handler (UNAVAILABLE)."""
    settings = {
        "no certificate": ServiceSettings(tls_ca=secured.ca, token=secured.tokens["infer"]),
        "another CA's certificate": secured.settings("infer", secured.stranger),
        "plaintext": ServiceSettings(token=secured.tokens["infer"]),
    }[client]
    with pytest.raises(aio.AioRpcError) as info:
        await _infer(settings, secured)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_server_certificate_is_checked_against_the_clients_ca(secured: Secured) -> None:
    with pytest.raises(aio.AioRpcError) as info:
        await _infer(secured.settings("infer", ca=secured.stranger_ca), secured)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def rest(secured: Secured) -> AsyncIterator[httpx.AsyncClient]:
    async with rest_client(secured.stack) as client:
        yield client


@pytest.mark.parametrize(
    ("route", "role", "status"),
    [
        ("/v2/health/ready", None, 200),
        ("/v2/models/iris", None, 401),
        ("/v2/models/iris", "service", 403),
        ("/v2/models/iris", "infer", 200),
        ("/v2/repository/models/iris/load", "infer", 403),
        ("/v2/repository/models/iris/load", "admin", 200),
    ],
)
async def test_rest_checks_the_same_bearer_tokens(
    secured: Secured, rest: httpx.AsyncClient, route: str, role: str | None, status: int
) -> None:
    headers = {"Authorization": f"Bearer {secured.tokens[role]}"} if role else {}
    if route.endswith("/load"):
        resp = await rest.post(route, headers=headers)
    else:
        resp = await rest.get(route, headers=headers)
    assert resp.status_code == status, resp.text
    for token in secured.tokens.by_role.values():
        assert token not in resp.text


@pytest.mark.parametrize("value", ["Basic abc", "Bearer", "Bearer nope-not-a-token", "Bearer a\tb", "Bearer " + "x" * 5000])
async def test_rest_bad_credentials_are_401(rest: httpx.AsyncClient, value: str) -> None:
    resp = await rest.get("/v2/models/iris", headers={"Authorization": value})
    assert resp.status_code == 401
    assert "x" * 64 not in resp.text and "nope-not-a-token" not in resp.text
