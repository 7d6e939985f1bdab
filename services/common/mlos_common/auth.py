"""Bearer-token authentication and role checks, with default deny.

The token file (MLOS_AUTH_TOKENS_FILE) holds one entry a line: `<token> <role>[,<role>...] [name]`,
where <token> is the token itself or `sha256:<64 hex>` (its digest, so the file need not hold
secrets); a line starting with `#` is a comment. Only digests are kept in memory. A presented token is hashed and
looked up by digest, then compared with hmac.compare_digest, so the time taken says nothing about
how close a guess was.

`AuthInterceptor` sits between metrics and errors in the chain. With a token book, every RPC needs
`authorization: Bearer <token>` whose roles meet mlos_common.access (health and reflection
excepted); a refusal is UNAUTHENTICATED (no usable token) or PERMISSION_DENIED (valid token, role
not allowed), with a message that names the header, the method and the roles, never the token.
Refusals are counted in `mlos_auth_denied_total{grpc_method,reason}`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc import aio
from prometheus_client import CollectorRegistry, Counter

from mlos_common.access import ROLES, is_open, roles_for
from mlos_common.errors import MlosError, PermissionDenied, Unauthenticated
from mlos_common.interceptors import Continuation

log = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 4096
HEADER = "authorization"
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # visible ASCII: no whitespace, NUL or control bytes
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class Principal:
    """Who a token belongs to: the name from the token file (never the token) and its roles."""

    name: str
    roles: frozenset[str]


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenBook:
    """Digests of the accepted tokens and their principals."""

    def __init__(self, entries: Mapping[bytes, Principal]) -> None:
        self._entries = list(entries.items())

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def from_lines(cls, lines: Iterable[str], source: str = "token file") -> TokenBook:
        """Parses token-file lines; ValueError names the line (not its token) on a bad one."""
        entries: dict[bytes, Principal] = {}
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):  # a token may hold "#": no comments after one
                continue
            fields = line.split()
            if len(fields) < 2:
                raise ValueError(f"{source} line {number}: expected `<token> <role>[,<role>] [name]`")
            secret, roles_text, *rest = fields
            roles = frozenset(r for r in roles_text.split(",") if r)
            unknown = sorted(roles - ROLES)
            if not roles or unknown:
                raise ValueError(f"{source} line {number}: unknown role(s) {unknown}; roles are {sorted(ROLES)}")
            match = _DIGEST.fullmatch(secret)
            if match is None and (len(secret) > MAX_TOKEN_BYTES or not _TOKEN_CHARS.fullmatch(secret)):
                raise ValueError(f"{source} line {number}: a token is 1..{MAX_TOKEN_BYTES} visible ASCII characters")
            digest = bytes.fromhex(match.group(1)) if match else token_digest(secret)
            entries[digest] = Principal(" ".join(rest) or f"line {number}", roles)
        return cls(entries)

    @classmethod
    def load(cls, path: Path) -> TokenBook:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the token file {path}: {type(exc).__name__}") from None
        book = cls.from_lines(text.splitlines(), f"token file {path}")
        if not book:
            raise ValueError(f"token file {path} holds no tokens: every RPC would be refused")
        return book

    def principal(self, metadata: Iterable[tuple[str, Any]] | None) -> Principal:
        """The principal of the request's bearer token; Unauthenticated says what is wrong with it."""
        values = [v for k, v in metadata or () if k == HEADER]
        if not values:
            raise Unauthenticated(f"missing `{HEADER}: Bearer <token>` metadata")
        if len(values) > 1:
            raise Unauthenticated(f"more than one `{HEADER}` header")
        value = values[0]
        if not isinstance(value, str):
            raise Unauthenticated(f"`{HEADER}` must be text, `Bearer <token>`")
        if len(value) > MAX_TOKEN_BYTES + 7:
            raise Unauthenticated(f"`{HEADER}` longer than {MAX_TOKEN_BYTES} bytes")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthenticated(f"`{HEADER}` must be `Bearer <token>`")
        if not token:
            raise Unauthenticated(f"`{HEADER}` has an empty bearer token")
        if not _TOKEN_CHARS.fullmatch(token):
            raise Unauthenticated("the bearer token holds whitespace or control characters")
        digest = token_digest(token)
        found = None
        for known, principal in self._entries:  # every entry, each in constant time
            if hmac.compare_digest(digest, known):
                found = principal
        if found is None:
            raise Unauthenticated("unknown bearer token")
        return found


def authorize(
    book: TokenBook, what: str, allowed: frozenset[str] | None, metadata: Iterable[tuple[str, Any]] | None
) -> Principal | None:
    """None when `what` is open (allowed is None); else the caller if one of its roles is
    allowed, or Unauthenticated / PermissionDenied."""
    if allowed is None:
        return None
    principal = book.principal(metadata)
    if not principal.roles & allowed:
        who = ", ".join(sorted(principal.roles))
        needs = " or ".join(sorted(allowed)) or "nobody (not in the access table)"
        raise PermissionDenied(f"{what} needs role {needs}; this token ({principal.name}) has {who}")
    return principal


def _refusal(handler: grpc.RpcMethodHandler, error: MlosError) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that only aborts with `error`'s status."""
    code = grpc.StatusCode[error.code]

    async def refuse(_request: Any, context: aio.ServicerContext) -> Any:
        await context.abort(code, error.message)

    kw = dict(request_deserializer=None, response_serializer=handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse, **kw)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, **kw)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse, **kw)
    return grpc.stream_stream_rpc_method_handler(refuse, **kw)


class AuthInterceptor(aio.ServerInterceptor):
    """Checks every call against the token book and the access table before its handler runs."""

    def __init__(self, book: TokenBook, registry: CollectorRegistry | None = None) -> None:
        self._book = book
        self._denied = Counter(
            "mlos_auth_denied", "RPCs refused by authentication or authorisation, by method and reason.",
            ["grpc_method", "reason"], registry=registry,
        )  # fmt: skip

    async def intercept_service(self, continuation: Continuation, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        try:
            allowed = None if is_open(details.method) else roles_for(details.method)
            authorize(self._book, details.method, allowed, details.invocation_metadata)
        except (Unauthenticated, PermissionDenied) as exc:
            self._denied.labels(details.method, exc.code).inc()
            log.debug("refused %s: %s", details.method, exc.message)
            return _refusal(handler, exc)
        return handler


def auth_interceptor(tokens_file: Path | None, registry: CollectorRegistry | None) -> AuthInterceptor | None:
    """The interceptor for `tokens_file` (None = auth off); logs which, once, at start-up."""
    if tokens_file is None:
        log.warning("auth off: no MLOS_AUTH_TOKENS_FILE, every RPC is open to anyone who can reach the port")
        return None
    book = TokenBook.load(tokens_file)
    log.info("auth on: %d tokens from %s; RPCs outside the access table are refused", len(book), tokens_file)
    return AuthInterceptor(book, registry)
