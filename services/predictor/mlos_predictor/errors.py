"""Predictor errors: typed, carrying their gRPC status by name (see mlos_common.errors)."""

from __future__ import annotations

from mlos_common.errors import FailedPrecondition, InvalidArgument, NotFound


class UnknownModel(NotFound):
    """No telemetry has been seen for this model (or this version of it)."""

    def __init__(self, model_name: str, model_version: int = 0) -> None:
        what = f"model {model_name!r}" if model_version == 0 else f"model {model_name!r} version {model_version}"
        super().__init__(f"no telemetry recorded for {what}")
        self.model_name = model_name
        self.model_version = model_version


class BadQuery(InvalidArgument):
    """A latency query that can never be answered (e.g. a negative version)."""


class UnknownKind(InvalidArgument):
    """A prediction kind the predictor does not have (gRPC INVALID_ARGUMENT; HTTP 404)."""

    def __init__(self, kind: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown prediction kind {kind!r}; known kinds: {', '.join(known)}")
        self.kind = kind


class BadFeatures(InvalidArgument):
    """A feature row that cannot be predicted on; the message names the row and the feature."""


class BadKind(InvalidArgument):
    """A prediction kind that is unknown, or that this operation does not take."""


class UnknownEntity(NotFound):
    """GetScores asked for entities (models, executors, clients) no telemetry has named."""


class TrainingOff(FailedPrecondition):
    """Training needs scikit-learn and skl2onnx (the `learn` extra), which are not installed."""
