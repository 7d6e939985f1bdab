"""The dashboard's plots, as inline SVG strings (matplotlib, no files, no network)."""

from __future__ import annotations

import io
import math
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend

WIDTH_IN = 7.5


def _svg(fig) -> str:  # noqa: ANN001 - a matplotlib Figure
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def latency_distributions(models: list[dict]) -> str | None:
    """Batch-1 request latency of each model that has samples: a box per model, log scale."""
    measured = [m for m in models if m.get("batch1", {}).get("samples_ms")]
    if not measured:
        return None
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.45 * len(measured) + 1.2))
    ax.boxplot([m["batch1"]["samples_ms"] for m in measured], orientation="horizontal", whis=(1, 99), showfliers=False)
    ax.set_yticks(range(1, len(measured) + 1), [m["name"] for m in measured])
    ax.set_xscale("log")
    ax.set_xlabel("request latency at batch 1, ms (box: p25-p75, whiskers: p1-p99; log scale)")
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig)


def throughput_vs_concurrency(models: list[dict]) -> str | None:
    measured = [m for m in models if m.get("throughput")]
    if not measured:
        return None
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.6))
    colors = [plt.get_cmap("tab20")(k) for k in range(20)]  # the default cycle has 10: an 11th model would share one
    markers = "os^Dv"
    for i, m in enumerate(measured):
        rows = m["throughput"]
        ax.plot([r["concurrency"] for r in rows], [r["requests_per_s"] for r in rows], marker=markers[i % len(markers)],
                color=colors[(2 * i) % 20 + (i // 10) % 2], label=m["name"])
    ax.set_xlabel("concurrent callers")
    ax.set_ylabel("requests / s")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _svg(fig)


def speedups(rows: list[dict]) -> str | None:
    """Each switch's speedup (off / on) with its confidence interval; 1.0 = no effect. Rows that could
    not be measured (status n/a) keep their place and say n/a. None when nothing was measured."""
    shown = [r for r in rows if r.get("status") == "n/a"
             or (isinstance(r.get("speedup"), dict) and r["speedup"].get("mean"))]
    if all(r.get("status") == "n/a" for r in shown):
        return None
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.45 * len(shown) + 1.2))
    labels = [f"{r.get('switch', '?')} ({r.get('model', '')} {r.get('metric', '')})".replace(" )", ")") for r in shown]
    means = [math.nan if r.get("status") == "n/a" else r["speedup"]["mean"] for r in shown]
    errors = [0.0 if math.isnan(m) or math.isnan(r["speedup"].get("half_width", math.nan)) else r["speedup"]["half_width"]
              for r, m in zip(shown, means)]
    measured = [m for m in means if not math.isnan(m)]
    left, right = min(*measured, 1.0) / 4, max(*measured, 1.0) * 4  # ratios: a log axis, whiskers cut at its ends
    lower = [min(e, m - left) if not math.isnan(m) else 0.0 for m, e in zip(means, errors)]
    # bars grow from 1 (no effect) towards the speedup, so 2x and 0.5x look alike
    ax.barh(range(len(shown)), [0.0 if math.isnan(m) else m - 1.0 for m in means], left=1.0,
            xerr=[lower, errors], color=["#2a9d8f" if m >= 1 else "#e76f51" for m in means])
    for i, (r, m) in enumerate(zip(shown, means)):
        if math.isnan(m):
            ax.text(1.0, i, f"  n/a: {r.get('note', 'not measured')}", va="center", fontsize=8, color="#666")
    ax.set_xscale("log")
    ax.set_xlim(left, right)
    ax.set_yticks(range(len(shown)), labels, fontsize=8)
    ax.invert_yaxis()  # top to bottom in the table's order
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("speedup = off / on, log scale (95 % interval); > 1 the switch helps; n/a = not measurable here")
    return _svg(fig)


def peers_throughput(rows: list[dict]) -> str | None:
    """Per model, requests/s against callers for each server (perf_analyzer's numbers); each server
    keeps one colour in every panel, and one legend names them all."""
    by_model: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("throughput_rps") is not None:
            by_model[r["model"]][r["server"]].append((r["concurrency"], r["throughput_rps"]))
    if not by_model:
        return None
    servers = sorted({server for per in by_model.values() for server in per})
    colors = {server: plt.get_cmap("tab10")(i % 10) for i, server in enumerate(servers)}
    columns = min(3, len(by_model))
    lines = -(-len(by_model) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(WIDTH_IN, 2.6 * lines + 0.6), squeeze=False)
    for ax, (model, per_server) in zip(axes.flat, sorted(by_model.items())):
        for server, points in sorted(per_server.items()):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=colors[server], label=server)
        ax.set_title(model, fontsize=9)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("callers", fontsize=8)
        ax.set_ylabel("requests / s", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(by_model):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], color=colors[s], marker="o", label=s) for s in servers]
    fig.legend(handles=handles, loc="lower center", ncol=len(servers), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.6 / (2.6 * lines + 0.6), 1, 1))
    return _svg(fig)
