"""The evaluation figure (mlos_predictor.eval_plot) drawn from a real evaluation: a panel per
view, evaluate's own numbers in the legends, the operating points where evaluate put them, and
nothing a person cannot read (tick labels, titles and axis labels neither collide nor leave the
figure). Drawing the CLI's PNG is tested in tests/cli/test_predictor_cmd.py."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from mlos_predictor import eval_plot  # noqa: E402
from mlos_predictor.evaluate import OPERATING_THRESHOLD, SCORERS, evaluate  # noqa: E402


@pytest.fixture(scope="module")
def evaluation():
    """A small real evaluation (every kind trained), shared by the tests of this module."""
    return evaluate(seed=1, scale=0.3)


@pytest.fixture
def drawn(evaluation):
    results, meta = evaluation
    fig = eval_plot.figure(results, meta)
    fig.canvas.draw()
    yield fig, {r.kind: r for r in results}
    eval_plot._pyplot().close(fig)


def unreadable(fig) -> list[str]:
    """Colliding tick labels on an axis, titles or axis labels that overlap another panel's or
    leave the figure (what makes a figure hard to read), described."""
    renderer = fig.canvas.get_renderer()
    found, texts = [], []
    for n, ax in enumerate(fig.axes):
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            shown = [t for t, at in zip(axis.get_majorticklabels(), axis.get_majorticklocs(), strict=True)
                     if t.get_visible() and t.get_text() and lo <= at <= hi]  # fmt: skip
            for a, b in itertools.combinations(shown, 2):
                if a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer)):
                    found.append(f"panel {n}: tick labels {a.get_text()!r} and {b.get_text()!r} collide")
        texts += [(n, t) for t in (ax.title, ax.xaxis.label, ax.yaxis.label) if t.get_text()]
    for n, t in texts:
        box = t.get_window_extent(renderer)
        if box.x0 < 0 or box.y0 < 0 or box.x1 > fig.bbox.x1 or box.y1 > fig.bbox.y1:
            found.append(f"panel {n}: {t.get_text()!r} leaves the figure")
    for (n, a), (m, b) in itertools.combinations(texts, 2):
        if n != m and a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer)):
            found.append(f"panels {n} and {m}: {a.get_text()!r} overlaps {b.get_text()!r}")
    return found


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_one_panel_per_view_with_units_and_evaluates_numbers(drawn) -> None:
    fig, by_kind = drawn
    assert len(fig.axes) == len(eval_plot.PANELS) == 6
    titles = [ax.get_title() for ax in fig.axes]
    for panel, title in zip(eval_plot.PANELS, titles, strict=True):
        assert title.startswith(panel.removesuffix("_day") + ":"), (panel, title)
    units = {"latency": "ms", "memory": "MB", "workload": "requests/s"}
    for ax, (kind, unit) in zip(fig.axes[:3], units.items(), strict=True):
        assert f", {unit}\n" in ax.get_title() and f"({unit})" in ax.get_xlabel() and f"({unit})" in ax.get_ylabel()
        labels = legend_texts(ax)
        for name in SCORERS:
            assert f"{name}: MAE {by_kind[kind].scores[name]:.4g} {unit}" in labels, (kind, labels)
        assert "y = x (perfect)" in labels
    day = fig.axes[3]
    assert "requests/s" in day.get_title() and "actual (one dot per window)" in legend_texts(day)
    for ax, kind in zip(fig.axes[4:], ("failure", "threat"), strict=True):
        labels = legend_texts(ax)
        for name in SCORERS:
            assert f"{name}: AUC {by_kind[kind].scores[name]:.4f}" in labels, (kind, labels)
        assert f"at the scheduler's threshold {OPERATING_THRESHOLD[kind]:g}" in labels


def test_roc_panels_mark_the_operating_point_at_evaluates_recall(drawn) -> None:
    fig, by_kind = drawn
    for ax, kind in zip(fig.axes[4:], ("failure", "threat"), strict=True):
        ev = by_kind[kind]
        points = [line for line in ax.get_lines() if line.get_marker() == "o" and len(line.get_xdata()) == 1]
        assert len(points) == len(SCORERS)
        drawn_recall = sorted(float(p.get_ydata()[0]) for p in points)
        assert np.allclose(drawn_recall, sorted(ev.recall[n] for n in SCORERS)), kind
        assert all(0.0 <= float(p.get_xdata()[0]) <= 1.0 for p in points)


def test_nothing_collides_or_leaves_the_figure(drawn) -> None:
    fig, _ = drawn
    assert unreadable(fig) == []


def test_a_held_out_set_of_one_class_gets_a_panel_saying_there_is_no_roc() -> None:
    results, meta = evaluate(seed=1, scale=0.2)  # no anomalous client window among the newest 20 %
    threat = next(r for r in results if r.kind == "threat")
    assert threat.held is not None and not threat.held.y.any()
    fig = eval_plot.figure(results, meta)
    try:
        ax = fig.axes[eval_plot.PANELS.index("threat")]
        assert [t.get_text() for t in ax.texts] == ["every held-out window is negative:\nno ROC curve, AUC undefined"]
        assert ax.get_title().startswith("threat: ROC") and not ax.get_lines()
    finally:
        eval_plot._pyplot().close(fig)


def test_a_kind_that_was_not_trained_gets_a_panel_saying_why() -> None:
    results, meta = evaluate(seed=1, scale=0.05)  # too little telemetry for memory and threat
    untrained = {r.kind: r.reason for r in results if r.held is None}
    assert {"memory", "threat"} <= set(untrained)
    fig = eval_plot.figure(results, meta)
    try:
        fig.canvas.draw()
        assert len(fig.axes) == 6
        for ax, panel in zip(fig.axes, eval_plot.PANELS, strict=True):
            if panel in untrained:
                assert ax.get_title() == f"{panel}: no learned model"
                assert [t.get_text() for t in ax.texts] == [untrained[panel]]
        assert unreadable(fig) == []
    finally:
        eval_plot._pyplot().close(fig)
