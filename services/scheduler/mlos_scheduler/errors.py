"""Scheduler errors, each carrying its gRPC status by name."""

from __future__ import annotations

from mlos_common.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, Unavailable


class ModelNotFound(NotFound):
    """No such model (or version) in the registry."""


class ModelNotReady(Unavailable):
    """The model exists but is not loaded on any executor right now; retry after loading."""


class BadRequest(InvalidArgument):
    """The inference request does not fit the model."""


class ShapeMismatch(BadRequest):
    """The request's inputs do not fit the model's signature (names, datatypes, shapes, batch size)."""


class QueueFull(ResourceExhausted):
    """The model's queue is at its limit; back off and retry."""


class NoExecutor(Unavailable):
    """No executor is reachable."""


class BatchMismatch(FailedPrecondition):
    """The executor's answer does not fit the batch that was sent (a broken invariant)."""


class ModelMissing(FailedPrecondition):
    """An executor answered that it does not hold the model (it restarted since the load)."""
