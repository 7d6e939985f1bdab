"""Typed errors that carry their gRPC status by name.

Domain modules raise these and never import grpc; the error interceptor
(`mlos_common.interceptors`) is the one place that turns them into a status.
"""

from __future__ import annotations


class MlosError(Exception):
    """Base class. `code` is a grpc.StatusCode name."""

    code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(MlosError):
    """The request is wrong whatever the server's state (dtype, shape, name). Do not retry."""

    code = "INVALID_ARGUMENT"


class NotFound(MlosError):
    """The named thing (model, version, artifact) does not exist."""

    code = "NOT_FOUND"


class AlreadyExists(MlosError):
    """The thing to create exists already."""

    code = "ALREADY_EXISTS"


class FailedPrecondition(MlosError):
    """The server is not in a state to do this (model not loaded, checksum mismatch). Fix, then retry."""

    code = "FAILED_PRECONDITION"


class ResourceExhausted(MlosError):
    """A limit was hit (queue full, payload too large). Retry later or send less."""

    code = "RESOURCE_EXHAUSTED"


class PermissionDenied(MlosError):
    """The caller may not do this (e.g. a client the threat model flags). Do not retry as is."""

    code = "PERMISSION_DENIED"


class Unauthenticated(MlosError):
    """No valid credentials (missing, malformed or unknown bearer token). Send a valid token."""

    code = "UNAUTHENTICATED"


class Unavailable(MlosError):
    """Transient: a peer is down or the service is draining. Safe to retry."""

    code = "UNAVAILABLE"


class DeadlineExceeded(MlosError):
    """The request's deadline passed or cannot be met."""

    code = "DEADLINE_EXCEEDED"


class OutOfRange(MlosError):
    """A position past what is kept or issued (e.g. a registry revision no longer kept). Re-list."""

    code = "OUT_OF_RANGE"


class Unimplemented(MlosError):
    """The server does not offer this operation."""

    code = "UNIMPLEMENTED"


class Internal(MlosError):
    """A broken invariant or runtime crash inside the server."""

    code = "INTERNAL"


_BY_CODE: dict[str, type[MlosError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        ResourceExhausted,
        PermissionDenied,
        Unauthenticated,
        Unavailable,
        DeadlineExceeded,
        OutOfRange,
        Unimplemented,
        Internal,
    )
}


def error_for_code(code_name: str, message: str) -> MlosError:
    """Rebuilds a typed error from a status name, e.g. when relaying a peer's failure."""
    return _BY_CODE.get(code_name, Internal)(message)
