"""Executor errors, each carrying its gRPC status by name."""

from __future__ import annotations

from mlos_common.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted

NOT_LOADED_PHRASE = "is not loaded on"  # how a caller tells this FAILED_PRECONDITION from the others


class ModelNotLoaded(FailedPrecondition):
    """The model version is not loaded on this executor: load it first.

    Travels as FAILED_PRECONDITION with NOT_LOADED_PHRASE in its message (`is_not_loaded`), so
    the scheduler can load the model again on an executor that restarted and lost it.
    """

    def __init__(self, name: str, version: int, executor_id: str) -> None:
        super().__init__(f"model {name!r} v{version} {NOT_LOADED_PHRASE} {executor_id}")


def is_not_loaded(code: str, message: str) -> bool:
    """True for an executor's answer that it does not hold the model (see ModelNotLoaded)."""
    return code == FailedPrecondition.code and NOT_LOADED_PHRASE in message


class ModelLoadFailed(FailedPrecondition):
    """The artifact is not a model this runtime can open."""


class ChecksumMismatch(FailedPrecondition):
    """The fetched artifact does not have the digest the registry promised."""


class BadOutputName(InvalidArgument):
    """An output was requested that the model does not have."""


class UnknownModel(NotFound):
    """Neither loaded here nor known to the registry."""


class MemoryBudgetExceeded(ResourceExhausted):
    """The model's predicted footprint does not fit what is left of the executor's memory budget."""
