"""Executor errors, each carrying its gRPC status by name."""

from __future__ import annotations

from mlos_common.errors import FailedPrecondition, InvalidArgument, NotFound


class ModelNotLoaded(FailedPrecondition):
    """The model version is not loaded on this executor: load it first."""


class ModelLoadFailed(FailedPrecondition):
    """The artifact is not a model this runtime can open."""


class ChecksumMismatch(FailedPrecondition):
    """The fetched artifact does not have the digest the registry promised."""


class BadOutputName(InvalidArgument):
    """An output was requested that the model does not have."""


class UnknownModel(NotFound):
    """Neither loaded here nor known to the registry."""
