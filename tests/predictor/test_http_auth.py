"""The predictor's seed HTTP API with auth on: the same tokens and roles as its gRPC twins
(mlos_common.access.PREDICTOR_HTTP), /health open, unknown routes nobody's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tls_testkit import Tokens, make_tokens

from mlos_common.access import predictor_http_roles_for
from mlos_common.config import ServiceSettings
from mlos_common.http_auth import http_guard
from mlos_predictor.http_api import start_http
from mlos_predictor.kinds import SPECS

FAILURE = dict(zip(SPECS["failure"].names, [0.4, 1.0, 0.0, 0.3, 0.0, 50.0]))


@pytest.fixture
async def guarded(engine, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Tokens]]:
    tokens = make_tokens(tmp_path)
    guard = http_guard(ServiceSettings(auth_tokens_file=tokens.file), predictor_http_roles_for)
    port, close = await start_http(engine, "127.0.0.1", 0, guard=guard)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client, tokens
    finally:
        await close()


@pytest.mark.parametrize(
    ("method", "route", "role", "status"),
    [
        ("GET", "/health", None, 200),
        ("POST", "/api/ml/predict/failure", None, 401),
        ("POST", "/api/ml/predict/failure", "infer", 200),
        ("GET", "/api/ml/cache/stats", "infer", 403),
        ("GET", "/api/ml/cache/stats", "service", 200),
        ("POST", "/api/ml/cache/clear", "service", 403),
        ("POST", "/api/ml/cache/clear", "admin", 200),
        ("GET", "/api/ml/nowhere", "admin", 403),
    ],
)
async def test_routes_need_their_roles(guarded, method: str, route: str, role: str | None, status: int) -> None:
    client, tokens = guarded
    headers = {"Authorization": f"Bearer {tokens[role]}"} if role else {}
    reply = await client.request(method, route, headers=headers, json=FAILURE if "predict" in route else None)
    assert reply.status_code == status, reply.text
    assert all(token not in reply.text for token in tokens.by_role.values())


async def test_an_unknown_token_is_401_without_echo(guarded) -> None:
    client, _ = guarded
    reply = await client.post("/api/ml/predict/failure", json=FAILURE, headers={"Authorization": "Bearer guess-1234"})
    assert reply.status_code == 401
    assert "guess-1234" not in reply.text and "unknown bearer token" in reply.text
