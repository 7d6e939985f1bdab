"""How the batchers of a scheduler order, admit and batch requests (one value, from settings)."""

from __future__ import annotations

from dataclasses import dataclass

from mlos_scheduler.window import PRESETS_US


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    order: str = "deadline"      # "deadline" (priority, then EDF, with aging) or "fifo"
    predicting: bool = True      # predict misses and refuse them at admission (order "deadline" only)
    miss_thresholds: tuple[float, ...] = (0.05, 0.5)  # per level from 1; the last for every lower one
    priority_levels: int = 3     # for models whose config sets none
    aging_s: float = 0.1         # one priority level is worth this much deadline (queues.py)
    windows_us: tuple[float, float, float] = PRESETS_US["balanced"]
    return_margin_s: float = 0.002  # answers must leave this long before the client's deadline
    fast_path: bool = True       # an idle model's lone request leaves at once; False: it waits the window

    @property
    def admits_by_prediction(self) -> bool:
        return self.order == "deadline" and self.predicting

    def threshold(self, priority: int) -> float:
        """Refuse a request of this priority predicted to miss with a higher probability."""
        return self.miss_thresholds[min(max(priority, 1), len(self.miss_thresholds)) - 1]

    def levels_of(self, model_levels: int) -> int:
        return model_levels or self.priority_levels

    def priority_of(self, requested: int, default_priority: int, levels: int) -> int:
        """Triton's rule: 0 = the model's default_priority, else the middle level."""
        if requested:
            return requested
        return default_priority or (levels + 1) // 2


__all__ = ["BatchPolicy"]
