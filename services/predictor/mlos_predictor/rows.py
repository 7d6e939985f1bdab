"""Feature rows from requests: the one validation both doors (gRPC and HTTP) use.

A row comes as `values` (numbers in the kind's feature order) or `named` (feature name ->
number), never both. Every refusal is a typed error whose message names the row (in a batch)
and the feature, so a person can fix the request: UnknownKind for a kind that does not exist,
BadFeatures for everything about the rows (both INVALID_ARGUMENT over gRPC).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mlos_predictor.errors import BadFeatures, UnknownKind
from mlos_predictor.kinds import KINDS, SPECS, KindSpec, row_from_named, validate_row


def spec_for(kind: str) -> KindSpec:
    """The spec of `kind`, or UnknownKind listing the kinds."""
    spec = SPECS.get(kind)
    if spec is None:
        raise UnknownKind(kind, KINDS)
    return spec


def kinds_of(kind: str) -> tuple[str, ...]:
    """`(kind,)`, or every kind when `kind` is empty (the "empty = every kind" of the API)."""
    return KINDS if not kind else (spec_for(kind).kind,)


def check_count(spec: KindSpec, n_rows: int, max_batch: int) -> None:
    """A batch must hold 1..max_batch rows."""
    if n_rows < 1:
        raise BadFeatures(f"no rows given: a {spec.kind} batch needs at least one feature row")
    if n_rows > max_batch:
        raise BadFeatures(f"{n_rows} rows is over the batch limit of {max_batch}; send them in several batches")


def _number(spec: KindSpec, name: str, value: object, where: str) -> float:
    # bool is an int in Python (JSON true): refuse it like any other non-number
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadFeatures(f"{where}feature {name!r} of {spec.kind} must be a number, got {value!r}")
    return float(value)


def parse_row(
    spec: KindSpec, values: Sequence[object] | None, named: Mapping[str, object] | None, where: str = ""
) -> list[float]:
    """The validated row in spec order. `where` prefixes messages (e.g. "rows[3]: ")."""
    if values and named:
        raise BadFeatures(f"{where}give the features either as values (in order) or named, not both")
    if named:
        missing_or_unknown = row_from_named(spec, dict.fromkeys(named, 0.0))
        if isinstance(missing_or_unknown, str):
            raise BadFeatures(where + missing_or_unknown)
        row = [_number(spec, n, named[n], where) for n in spec.names]
    elif values:
        if len(values) != spec.width:
            raise BadFeatures(f"{where}{spec.kind} takes {spec.width} features ({', '.join(spec.names)}), got {len(values)}")
        row = [_number(spec, n, v, where) for n, v in zip(spec.names, values, strict=True)]
    else:
        raise BadFeatures(f"{where}no features given; {spec.kind} takes {', '.join(spec.names)}")
    why = validate_row(spec, row)
    if why is not None:
        raise BadFeatures(where + why)
    return row


def rows_array(rows: list[list[float]]) -> np.ndarray:
    """Validated rows as the float64 (n, F) array the engine takes."""
    return np.array(rows, dtype=np.float64)


def sample_rows(spec: KindSpec, n: int, seed: int = 0) -> np.ndarray:
    """n valid, distinct rows of `spec` for probes, tests and benchmarks (each feature uniform
    in [lo, lo + min(hi - lo, 10)]; not a realistic distribution)."""
    rng = np.random.default_rng(seed)
    lo = np.array([f.lo for f in spec.features])
    span = np.array([min(f.hi - f.lo, 10.0) for f in spec.features])
    return lo + rng.random((n, spec.width)) * span
