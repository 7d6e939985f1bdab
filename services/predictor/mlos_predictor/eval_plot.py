"""The evaluation as one figure (`mlos predictor eval --plot PATH.png`): a panel per view.

`figure(results, meta)` reads only what evaluate.py computed (the held-out labels and each
scorer's outputs, the scores) and draws six panels on a 2 x 3 grid:
- latency, memory, workload: predicted vs actual on the held-out rows for learned, baseline and
  prior, with the y = x line and each scorer's MAE (evaluate's number) in the legend;
- workload over one simulated day: actual requests/s of the busiest model vs each forecast;
- failure, threat: ROC curves of the three scorers with evaluate's AUC in the legend and the
  point each reaches at the operating threshold (the scheduler's default) marked.
A kind that was not trained, or whose held-out rows hold one class only (no ROC), gets a panel
that says so. `save(results, meta, path)` writes the
PNG. matplotlib (the `bench` extra) is imported lazily with the Agg backend; `unavailable()`
says why plotting is off before any work is done.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from mlos_predictor.evaluate import OPERATING_THRESHOLD, SCORERS, HeldOut, KindEvaluation
from mlos_predictor.kinds import SPECS

COLOURS = {"learned": "tab:blue", "baseline": "tab:orange", "prior": "tab:green"}
DRAW_ORDER = ("baseline", "prior", "learned")  # learned last, on top
MAX_POINTS = 1500  # per scorer in a scatter, evenly spaced over the held-out rows
WINDOW_S = 300  # the simulator's workload window
WINDOWS_PER_DAY = 86400 // WINDOW_S
SCATTER = {  # kind -> (what is predicted, log axes)
    "latency": ("compute time of the next execution", True),
    "memory": ("footprint of a load + warm-up batch", True),
    "workload": ("next window's request rate", False),
}
SYMLOG_LINEAR_BELOW = 0.001  # ROC's false positive rate axis: linear up to this, log above
PANELS = ("latency", "memory", "workload", "workload_day", "failure", "threat")


def unavailable() -> str | None:
    """Why `--plot` cannot run (matplotlib missing or broken), or None when it can."""
    try:
        importlib.import_module("matplotlib")
    except ImportError as e:
        return f"--plot needs matplotlib ({e}); install it with: pip install 'mlos[bench]'"
    return None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(results: list[KindEvaluation], meta: dict[str, float]) -> Any:
    """A matplotlib Figure with one axes per entry of PANELS, in that order."""
    plt = _pyplot()
    fig, grid = plt.subplots(2, 3, figsize=(18, 11), layout="constrained")
    by_kind = {r.kind: r for r in results}
    for ax, panel in zip(grid.flat, PANELS, strict=True):
        ev = by_kind.get(panel.removesuffix("_day"))
        if ev is None or ev.held is None:
            _not_trained(ax, panel, ev)
        elif panel in SCATTER:
            _scatter(ax, ev, ev.held)
        elif panel == "workload_day":
            _day(ax, ev, ev.held)
        else:
            _roc(ax, ev, ev.held)
    fig.suptitle(
        f"mlos predictor eval (seed {meta['seed']:g}, scale {meta['scale']:g}): learned model vs naive baseline "
        f"vs prior on the held-out newest 20 % of simulated telemetry",
        fontsize=14,
    )
    return fig


def save(results: list[KindEvaluation], meta: dict[str, float], path: Path) -> Path:
    """Writes figure(results, meta) to `path` (format from its suffix); returns the path."""
    plt = _pyplot()
    fig = figure(results, meta)
    try:
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


def _evenly(n: int, most: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, most)).astype(int))


def _scatter(ax: Any, ev: KindEvaluation, held: HeldOut) -> None:
    what, log = SCATTER[ev.kind]
    unit = SPECS[ev.kind].unit
    pick = _evenly(len(held.y), MAX_POINTS)
    y = held.y[pick]
    for name in DRAW_ORDER:
        ax.scatter(y, held.outputs[name][pick], s=7, alpha=0.35, color=COLOURS[name], linewidths=0,
                   label=f"{name}: MAE {ev.scores[name]:.4g} {unit}")  # fmt: skip
    everything = np.concatenate([y, *(held.outputs[n][pick] for n in SCORERS)])
    positive = everything[everything > 0]
    lo, hi = (positive.min(), everything.max()) if log and positive.size else (everything.min(), everything.max())
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=1, label="y = x (perfect)")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    shown = f"{pick.size} of {len(held.y)}" if pick.size < len(held.y) else f"{len(held.y)}"
    ax.set_title(f"{ev.kind}: {what}, {unit}\n({shown} held-out rows; {'log' if log else 'linear'} axes)")
    if log:
        _plain_log_ticks(ax.xaxis)
        _plain_log_ticks(ax.yaxis)
    ax.set_xlabel(f"actual {SPECS[ev.kind].output} ({unit})")
    ax.set_ylabel(f"predicted {SPECS[ev.kind].output} ({unit})")
    for handle in _legend(ax, "upper left", markerscale=2.5).legend_handles:
        if handle is not None:
            handle.set_alpha(1.0)


def _plain_log_ticks(axis: Any) -> None:
    """Log-axis ticks written as plain numbers at 1, 2, 5 x 10^k (1 x 10^k over more than 2.5
    decades, where more would collide), no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = axis.get_view_interval()
    decades = np.log10(hi / lo) if lo > 0 else np.inf
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 2.5 else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _day(ax: Any, ev: KindEvaluation, held: HeldOut) -> None:
    """One simulated day (the last held-out day) of the busiest model: actual vs each forecast."""
    entities = np.asarray(held.entities, dtype=object)
    names = sorted(set(held.entities))
    busiest = max(names, key=lambda e: float(held.y[entities == e].mean()))
    rows = np.flatnonzero(entities == busiest)[-WINDOWS_PER_DAY:]
    t_ms = held.unix_ms[rows]
    hours = (t_ms - t_ms[0]) / 3.6e6
    start_min = int(t_ms[0]) // 60_000 % 1440
    unit = SPECS["workload"].unit
    ax.scatter(hours, held.y[rows], s=9, color="black", zorder=3, label="actual (one dot per window)")
    for name in DRAW_ORDER:
        bold = name == "learned"
        ax.plot(hours, held.outputs[name][rows], color=COLOURS[name], linewidth=2.0 if bold else 1.0,
                alpha=1.0 if bold else 0.75, label=f"{name} forecast, held-out MAE {ev.scores[name]:.4g}")  # fmt: skip
    span_h = (int(t_ms[-1]) - int(t_ms[0])) / 3.6e6 + WINDOW_S / 3600
    ax.set_title(f"workload: {busiest}'s request rate, {unit}, over {span_h:.0f} simulated hours\n"
                 f"(its last {rows.size} held-out windows; forecasts one window ahead)")  # fmt: skip
    ax.set_xlabel(f"hours since the first window shown ({start_min // 60:02d}:{start_min % 60:02d} UTC)")
    ax.set_ylabel(f"requests/s over the window ({unit})")
    ax.set_ylim(0, 1.35 * float(max(held.y[rows].max(), *(held.outputs[n][rows].max() for n in SCORERS))))
    _legend(ax, "upper left")


def _roc(ax: Any, ev: KindEvaluation, held: HeldOut) -> None:
    from sklearn.metrics import roc_curve

    threshold = OPERATING_THRESHOLD[ev.kind]
    negatives = held.y == 0
    label = "executor fails or degrades within the horizon" if ev.kind == "failure" else "client is in an anomalous episode"
    ax.set_title(f"{ev.kind}: ROC of P({label})\n({len(held.y)} held-out windows, {ev.positives} positive)")
    if negatives.all() or not negatives.any():
        only = "negative" if negatives.all() else "positive"
        ax.text(0.5, 0.5, f"every held-out window is {only}:\nno ROC curve, AUC undefined", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
        return
    for name in DRAW_ORDER:
        out = held.outputs[name]
        fpr, tpr, _ = roc_curve(held.y, out)
        ax.plot(fpr, tpr, color=COLOURS[name], linewidth=1.6, label=f"{name}: AUC {ev.scores[name]:.4f}")
        at_fpr = float((out[negatives] >= threshold).mean())
        ax.plot([at_fpr], [ev.recall[name]], marker="o", markersize=9, color=COLOURS[name],
                markeredgecolor="black", linestyle="none", clip_on=False, zorder=4)  # fmt: skip
    chance = np.linspace(0, 1, 2001)  # y = x, drawn densely: it is a curve on this axis
    ax.plot(chance, chance, color="grey", linestyle=":", linewidth=1, label="chance (y = x)")
    ax.plot([], [], marker="o", markersize=9, color="white", markeredgecolor="black", linestyle="none",
            label=f"at the scheduler's threshold {threshold:g}")  # fmt: skip
    ax.set_xscale("symlog", linthresh=SYMLOG_LINEAR_BELOW)  # the interesting corner is at FPR < 1 %
    ax.set_xticks([0, 0.001, 0.01, 0.1, 1], ["0", "0.001", "0.01", "0.1", "1"])
    ax.set_xlim(0, 1)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel(f"false positive rate (negative windows; log axis, linear below {SYMLOG_LINEAR_BELOW:g})")
    ax.set_ylabel("true positive rate (recall)")
    _legend(ax, "lower right")  # ROC curves keep to the upper left


def _not_trained(ax: Any, panel: str, ev: KindEvaluation | None) -> None:
    reason = ev.reason if ev is not None else "not evaluated"
    ax.set_title(f"{panel.replace('_', ' ')}: no learned model")
    ax.text(0.5, 0.5, reason, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_axis_off()


def _legend(ax: Any, where: str, markerscale: float = 1.0) -> Any:
    ax.grid(True, alpha=0.3)
    return ax.legend(loc=where, fontsize=9, framealpha=0.9, markerscale=markerscale)
