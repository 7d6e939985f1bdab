"""Model signatures and request validation shared by the scheduler and the executor."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from mlos_common.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A model input or output as declared by the model file. -1 = any size."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TensorHeader:
    """What a request says about one of its tensors (the bytes are checked elsewhere)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


class HasSignature(Protocol):
    @property
    def inputs(self) -> Sequence[TensorSpec]: ...
    @property
    def outputs(self) -> Sequence[TensorSpec]: ...


def batchable(signature: HasSignature) -> bool:
    """True when every input and output has a variable first dimension (the model can batch)."""
    specs = (*signature.inputs, *signature.outputs)
    return bool(specs) and all(len(s.shape) >= 1 and s.shape[0] == -1 for s in specs)


def shape_matches(declared: Sequence[int], given: Sequence[int]) -> bool:
    return len(declared) == len(given) and all(d < 0 or d == g for d, g in zip(declared, given))


def validate_inputs(model: str, specs: Sequence[TensorSpec], given: Iterable[TensorHeader]) -> None:
    """Every declared input present once, with the declared datatype and a compatible shape."""
    by_name = {s.name: s for s in specs}
    seen: set[str] = set()
    for t in given:
        spec = by_name.get(t.name)
        if spec is None:
            raise InvalidArgument(
                f"model {model!r} has no input {t.name!r}; its inputs are {sorted(by_name)}"
            )
        if t.name in seen:
            raise InvalidArgument(f"input {t.name!r} is given twice")
        seen.add(t.name)
        if t.datatype != spec.datatype:
            raise InvalidArgument(
                f"input {t.name!r} of model {model!r} is {spec.datatype}, got {t.datatype}"
            )
        if not shape_matches(spec.shape, t.shape):
            raise InvalidArgument(
                f"input {t.name!r} of model {model!r} has shape {list(spec.shape)} (-1 = any), "
                f"got {list(t.shape)}"
            )
    missing = sorted(set(by_name) - seen)
    if missing:
        raise InvalidArgument(f"model {model!r} needs inputs {missing}, which the request lacks")

