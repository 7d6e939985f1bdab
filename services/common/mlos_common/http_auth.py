"""Bearer-token checks for the HTTP doors (the scheduler's KServe v2 REST, the predictor's seed
API): the same tokens and roles as gRPC (mlos_common.auth), from the `Authorization: Bearer
<token>` header, each door's routes mapped to roles by mlos_common.access."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from mlos_common.auth import HEADER, TokenBook, authorize
from mlos_common.config import ServiceSettings

Guard = Callable[[web.Request, str], None]  # (request, canonical route); raises Unauthenticated / PermissionDenied
RouteRoles = Callable[[str], "frozenset[str] | None"]  # canonical route -> roles allowed (None = open)


def http_guard(settings: ServiceSettings, roles_for: RouteRoles) -> Guard | None:
    """None with auth off; else a check of each request against the token file's book."""
    if settings.auth_tokens_file is None:
        return None
    book = TokenBook.load(settings.auth_tokens_file)

    def guard(request: web.Request, route: str) -> None:
        headers = [(HEADER, value) for value in request.headers.getall(HEADER, [])]
        authorize(book, f"{request.method} {route}", roles_for(route), headers)

    return guard


def canonical_route(request: web.Request) -> str:
    """The route's pattern (e.g. /v2/models/{name}), or "unmatched"."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"
