"""The SLO benchmark's table, its target lines, and the PNG plot."""

from __future__ import annotations

from pathlib import Path

from slo.admin import pooled_brier

TOP_MET_TARGET = 0.999
GOODPUT_RATIO_TARGET = 1.5
BRIER_TARGET = 0.05
TARGET_LOAD = 1.5


def fmt(value, spec: str = ".1f", scale: float = 1.0) -> str:
    return "n/a" if value is None else format(value * scale, spec)


def _run_brier(run: dict) -> float | None:
    return pooled_brier([c["admission"] for c in run["classes"]])


def format_table(policies: dict[str, list[dict]]) -> str:
    header = ("policy", "load", "prio", "deadline", "offered/s", "goodput/s", "goodput%", "miss%",
              "early-rej%", "p50 ms", "p99 ms", "lag p99", "brier")  # fmt: skip
    lines = [header]
    for policy, runs in policies.items():
        for run in runs:
            for c in run["classes"]:
                adm = c["admission"]
                lines.append((
                    policy, f"{run['load']:.2f}x", str(c["priority"]), f"{c['deadline_ms']:.0f} ms",
                    fmt(c["offered_rps"]), fmt(c["goodput_rps"]), fmt(c["goodput_share"], scale=100),
                    fmt(c["miss_rate"], scale=100), fmt(c["early_reject_rate"], scale=100),
                    fmt(c["p50_ms"], ".2f"), fmt(c["p99_ms"], ".2f"), fmt(c["lag_p99_ms"], ".2f"),
                    fmt(adm["brier"] if adm else None, ".3f"),
                ))
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in lines)


def _at(runs: list[dict], load: float) -> dict | None:
    return next((r for r in runs if abs(r["load"] - load) < 1e-9), None)


def targets(policies: dict[str, list[dict]]) -> list[dict]:
    """The issue's three targets at 1.5x load; each PASS, FAIL or n/a (with why)."""
    deadline, fifo = _at(policies.get("deadline", []), TARGET_LOAD), _at(policies.get("fifo", []), TARGET_LOAD)
    out = []
    if deadline is None:
        out.append({"target": "top priority met", "status": "n/a", "detail": "no deadline run at 1.5x"})
    else:
        top = min(deadline["classes"], key=lambda c: c["priority"])
        share = top["admitted_met_share"]
        status = "n/a" if share is None else ("PASS" if share >= TOP_MET_TARGET else "FAIL")
        out.append({"target": f">= {TOP_MET_TARGET:.1%} of admitted priority-{top['priority']} requests meet "
                              "their deadline (deadline policy, 1.5x)",
                    "status": status, "value": share})  # fmt: skip
    if deadline is None or fifo is None:
        out.append({"target": "goodput vs FIFO", "status": "n/a", "detail": "needs both policies at 1.5x"})
    else:
        ours, theirs = (sum(c["goodput_rps"] for c in r["classes"]) for r in (deadline, fifo))
        ratio = ours / theirs if theirs else None
        status = "n/a" if ratio is None else ("PASS" if ratio >= GOODPUT_RATIO_TARGET else "FAIL")
        out.append({"target": f"goodput >= {GOODPUT_RATIO_TARGET}x FIFO's (1.5x, all classes)", "status": status,
                    "value": ratio, "deadline_goodput_rps": ours, "fifo_goodput_rps": theirs})  # fmt: skip
    brier = _run_brier(deadline) if deadline else None
    out.append({"target": f"Brier score <= {BRIER_TARGET} (deadline policy, 1.5x)",
                "status": "n/a" if brier is None else ("PASS" if brier <= BRIER_TARGET else "FAIL"),
                "value": brier})  # fmt: skip
    return out


def format_targets(lines: list[dict]) -> str:
    return "\n".join(f"{t['status']:>4}  {t['target']}: "
                     f"{'n/a' if t.get('value') is None else format(t['value'], '.4g')}" for t in lines)  # fmt: skip


def reliability_table(runs: list[dict]) -> str:
    """Per load and priority: predicted vs observed miss rate per bin (deadline policy)."""
    lines = []
    for run in runs:
        for c in run["classes"]:
            adm = c["admission"]
            for b in (adm or {}).get("reliability", []):
                lines.append(f"  {run['load']:.2f}x p{c['priority']}  [{b['low']:.1f},{b['high']:.1f})  "
                             f"n={b['count']:<6d} predicted {b['mean_predicted']:.3f}  observed "
                             f"{b['observed_miss_rate']:.3f}")  # fmt: skip
    return "\n".join(lines) if lines else "  n/a (GetAdmissionStats not implemented or no deadlines seen)"


def plot(policies: dict[str, list[dict]], path: Path) -> Path | None:
    """Goodput and miss rate vs load, one panel column per class, both policies. None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    first = next(iter(policies.values()))
    n_classes = len(first[0]["classes"]) if first else 0
    if not n_classes:
        return None
    fig, axes = plt.subplots(2, n_classes, figsize=(4 * n_classes, 6), squeeze=False)
    for policy, runs in policies.items():
        loads = [r["load"] for r in runs]
        for k in range(n_classes):
            cls = [r["classes"][k] for r in runs]
            axes[0][k].plot(loads, [c["goodput_rps"] for c in cls], marker="o", label=policy)
            axes[1][k].plot(loads, [100 * (c["miss_rate"] or 0) for c in cls], marker="o", label=policy)
            axes[0][k].set_title(f"priority {cls[0]['priority']} ({cls[0]['deadline_ms']:.0f} ms)")
    for k in range(n_classes):
        axes[0][k].set_ylabel("goodput (req/s)")
        axes[1][k].set_ylabel("miss rate (%)")
        axes[1][k].set_xlabel("offered load (x capacity)")
        axes[0][k].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
