"""Typed registry errors; each carries its gRPC status through mlos_common.errors.

Messages name what the user gave (model name, version, the path as typed), never a path inside
the registry's own store.
"""

from __future__ import annotations

from mlos_common.errors import FailedPrecondition, InvalidArgument, NotFound, OutOfRange, ResourceExhausted


class ModelNotFound(NotFound):
    """No such model, or no such version of it."""


class FileNotFound(NotFound):
    """The path given to RegisterModel does not exist."""


class InvalidModelName(InvalidArgument):
    """A model name outside 1-128 chars of [A-Za-z0-9_.-] (not starting with '.' or '-')."""


class InvalidPath(InvalidArgument):
    """The path given is not a regular file, or lies outside the allowed roots."""


class UnsupportedFormat(InvalidArgument):
    """A known model format that this registry cannot register (yet)."""


class InvalidModelFile(InvalidArgument):
    """The file is not a model we recognise, or it is damaged."""


class ArtifactTooLarge(ResourceExhausted):
    """The model file is over max_artifact_bytes."""


class ArtifactCorrupt(FailedPrecondition):
    """The stored blob no longer matches its digest; re-register the model."""


class AliasNotFound(NotFound):
    """The model has no such alias."""


class InvalidAliasName(InvalidArgument):
    """An alias outside the model-name rules, all digits, or "latest"."""


class AliasInUse(FailedPrecondition):
    """A version to delete has an alias pointing at it (delete with force to drop the alias too)."""


class HistoryTrimmed(OutOfRange):
    """WatchModels from a revision the registry no longer keeps (or never issued): re-list."""
