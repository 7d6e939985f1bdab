"""The executor's memory budget: what its loaded models take, and whether one more fits.

A load first *reserves* its predicted footprint: it is refused (MemoryBudgetExceeded,
RESOURCE_EXHAUSTED) when the prediction exceeds the budget less what is in use. While the load
runs its reservation counts as used, so two loads at once cannot both take the last room. When
it finishes, the footprint measured during the load replaces the prediction (`settle`); an
unload gives it back (`release`). When a `make_room` callback is given, a load that does not fit
first asks it to evict (eviction.py: least recently used idle models) and is refused only when it
still does not fit. A model loaded again in place (another digest under the same
name and version) keeps its old footprint until the new one settles, as both are in memory then.

`used` counts the models only (their measured resident growth), not the process's own baseline.
A budget of 0 means none: nothing is refused, footprints are still measured and reported.
No grpc here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mlos_executor.errors import MemoryBudgetExceeded

MB = 2**20
DEFAULT_BUDGET_FRACTION = 0.8

Key = tuple[str, int]
# (the key being loaded, bytes short) -> evicts what it can (calling release) and returns a note
# for the refusal when the room could not be made ("" when it could)
MakeRoom = Callable[[Key, int], str]


@dataclass(frozen=True, slots=True)
class Footprint:
    """A model's memory as the budget counts it: predicted before the load, measured after it."""

    bytes: int  # measured once settled; the prediction while loading
    measured: bool
    predicted_bytes: int = 0  # 0 = not predicted (no budget to check against)
    predicted_by: str = ""  # who predicted it, in words


def budget_bytes(budget_mb: float | None, mem_total_bytes: int) -> int:
    """The budget in bytes: `budget_mb` when given (0 = none), else 80 % of the host's memory.
    Raises ValueError naming MLOS_EXECUTOR_MEMORY_BUDGET_MB when it is negative or more than the
    host's memory (when that is known)."""
    if budget_mb is None:
        return int(mem_total_bytes * DEFAULT_BUDGET_FRACTION)
    if budget_mb < 0:
        raise ValueError(f"MLOS_EXECUTOR_MEMORY_BUDGET_MB={budget_mb:g} is negative; give the MB the models may "
                         "take, 0 for no budget, or unset it for 80 % of the host's memory")
    if mem_total_bytes and budget_mb * MB > mem_total_bytes:
        raise ValueError(f"MLOS_EXECUTOR_MEMORY_BUDGET_MB={budget_mb:g} is more than this host's memory "
                         f"({mem_total_bytes / MB:.0f} MB); give at most that, or unset it for 80 %")
    return int(budget_mb * MB)


@dataclass
class MemoryBudget:
    budget_bytes: int  # 0 = no budget
    held: dict[Key, Footprint] = field(default_factory=dict)  # loaded models
    pending: dict[Key, Footprint] = field(default_factory=dict)  # loads in progress

    @property
    def used_bytes(self) -> int:
        return sum(f.bytes for f in self.held.values()) + sum(f.bytes for f in self.pending.values())

    def free_bytes(self) -> int:
        return max(0, self.budget_bytes - self.used_bytes) if self.budget_bytes > 0 else 0

    def over_bytes(self) -> int:
        """How much more than the budget is used (a measurement above its prediction); 0 = within."""
        return max(0, self.used_bytes - self.budget_bytes) if self.budget_bytes > 0 else 0

    def reserve(self, key: Key, predicted_bytes: int, predicted_by: str, make_room: MakeRoom | None = None) -> None:
        """Counts a load's predicted footprint as used, or raises MemoryBudgetExceeded naming the
        model, the prediction, who made it, the budget and what is in use. With `make_room`, a load
        that does not fit first has it evict (see the module docstring)."""
        note = ""
        if self.budget_bytes > 0 and make_room is not None and predicted_bytes > self.budget_bytes - self.used_bytes:
            note = make_room(key, predicted_bytes - (self.budget_bytes - self.used_bytes))
        used = self.used_bytes
        if self.budget_bytes > 0 and predicted_bytes > self.budget_bytes - used:
            name, version = key
            free = max(0, self.budget_bytes - used)
            raise MemoryBudgetExceeded(
                f"model {name!r} v{version} is predicted to need {predicted_bytes / MB:.1f} MB "
                f"(by {predicted_by}), more than the {free / MB:.1f} MB left of this executor's memory budget "
                f"({self.budget_bytes / MB:.1f} MB, {used / MB:.1f} MB used by {self._holders()}){note}; "
                "unload a model, load it on another executor or raise MLOS_EXECUTOR_MEMORY_BUDGET_MB"
            )
        self.pending[key] = Footprint(predicted_bytes, False, predicted_bytes, predicted_by)

    def settle(self, key: Key, measured_bytes: int) -> Footprint:
        """The load finished: its measured footprint replaces the prediction (and any old one)."""
        reserved = self.pending.pop(key, None) or Footprint(0, False)
        footprint = Footprint(max(0, measured_bytes), True, reserved.predicted_bytes, reserved.predicted_by)
        self.held[key] = footprint
        return footprint

    def abandon(self, key: Key) -> None:
        """The load failed: its reservation goes."""
        self.pending.pop(key, None)

    def release(self, key: Key) -> None:
        """The model was unloaded."""
        self.held.pop(key, None)

    def _holders(self) -> str:
        parts = [f"{n} v{v} {f.bytes / MB:.1f} MB" for (n, v), f in self.held.items()]
        parts += [f"{n} v{v} {f.bytes / MB:.1f} MB loading" for (n, v), f in self.pending.items()]
        return ", ".join(parts) or "nothing"
