"""The REST front door's bearer-token check: the same tokens and roles as gRPC (mlos_common.auth),
from the `Authorization: Bearer <token>` header, routes mapped by mlos_common.access.rest_roles_for."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from mlos_common.access import rest_roles_for
from mlos_common.auth import HEADER, TokenBook, authorize
from mlos_common.config import ServiceSettings

Guard = Callable[[web.Request, str], None]  # (request, canonical route); raises Unauthenticated / PermissionDenied


def rest_guard(settings: ServiceSettings) -> Guard | None:
    """None with auth off; else a check of each request against the token file's book."""
    if settings.auth_tokens_file is None:
        return None
    book = TokenBook.load(settings.auth_tokens_file)

    def guard(request: web.Request, route: str) -> None:
        headers = [(HEADER, value) for value in request.headers.getall(HEADER, [])]
        authorize(book, f"{request.method} {route}", rest_roles_for(route), headers)

    return guard
