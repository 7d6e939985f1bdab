"""Evaluation: each learned model against its naive baseline and its prior, on held-out telemetry.

`evaluate(seed, scale)` simulates telemetry (simulate.py), feeds every TelemetryBatch through
the same conversion and books as ReportTelemetry (convert.telemetry_from_proto, Intake.ingest),
trains each kind with the same trainer as the learning loop (served model: the prior, as in a
fresh predictor), and scores on the trainer's held-out rows (the newest 20 %):
- workload, memory, latency: MAE in the kind's unit;
- failure: ROC AUC, precision at the operating threshold, and the Brier score of the probability
  (the baseline's probability is the current error rate);
- threat: ROC AUC and precision at the operating threshold against the simulator's ground truth
  (was the client inside an anomalous episode in that window); the AUC on the proxy label the
  live loop judges with (books.misbehaves) is reported beside it.
Precision at the threshold applies the same threshold to each scorer's output.
Each KindEvaluation keeps its held-out rows' labels and every scorer's outputs (`held`) for
plotting (eval_plot.py); as_json leaves them out.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields

import numpy as np

from mlos_predictor import trainer
from mlos_predictor.convert import telemetry_from_proto
from mlos_predictor.intake import Intake
from mlos_predictor.kinds import KINDS, SPECS
from mlos_predictor.latency import LatencyBook
from mlos_predictor.models import PriorModel
from mlos_predictor.simulate import simulate

# The score at or above which a consumer acts, the scheduler's defaults: it routes away from an
# executor (MLOS_SCHEDULER_FAILURE_AVOID_PROBABILITY) or refuses a client (..._THREAT_BLOCK_SCORE).
OPERATING_THRESHOLD = {"failure": 0.5, "threat": 0.8}
SCORERS = ("learned", "baseline", "prior")


@dataclass(frozen=True)
class HeldOut:
    """The held-out rows as scored: the label each scorer was judged against and its outputs."""

    y: np.ndarray  # (n,) the kind's unit; 0/1 for failure and threat (threat: the simulator's truth)
    outputs: dict[str, np.ndarray]  # learned / baseline / prior -> (n,)
    unix_ms: np.ndarray  # (n,) int64, time of each row's telemetry
    entities: tuple[str, ...]  # (n,) model, executor or client of each row


@dataclass
class KindEvaluation:
    kind: str
    metric: str  # "mae" or "auc"
    unit: str
    scores: dict[str, float]  # learned / baseline / prior on the held-out rows
    beats_baseline: bool
    replaced: bool  # what the learning loop's rule decided (beats the baseline and the prior)
    reason: str
    training_rows: int
    held_out_rows: int
    positives: int = 0  # held-out rows labelled 1 (failure, threat)
    precision: dict[str, float] = field(default_factory=dict)  # at the operating threshold
    recall: dict[str, float] = field(default_factory=dict)  # at the operating threshold
    brier: dict[str, float] = field(default_factory=dict)  # failure
    proxy_auc: dict[str, float] = field(default_factory=dict)  # threat, on the live loop's proxy label
    train_s: float = 0.0
    held: HeldOut | None = field(default=None, repr=False)  # None when not trained


def _precision(y: np.ndarray, p: np.ndarray, threshold: float) -> float:
    flagged = p >= threshold
    return float(y[flagged].mean()) if flagged.any() else math.nan


def _recall(y: np.ndarray, p: np.ndarray, threshold: float) -> float:
    return float((p[y == 1] >= threshold).mean()) if (y == 1).any() else math.nan


def evaluate_kind(kind: str, intake: Intake, anomalous: set[tuple[str, int]], seed: int) -> KindEvaluation:
    spec = SPECS[kind]
    rows = intake.stores()[kind].snapshot()
    start = time.perf_counter()
    result = trainer.train(spec, rows, PriorModel(spec), seed=seed)
    train_s = time.perf_counter() - start
    held = result.held_out
    if result.model is None or held is None:
        return KindEvaluation(kind, spec.metric, spec.unit, {}, False, False, result.reason, 0, 0, train_s=train_s)
    outputs = {"learned": result.model.predict(held.x), "baseline": spec.baseline(held.x), "prior": spec.prior(held.x)}
    y = held.y
    if kind == "threat":
        y = np.array([(e, int(t)) in anomalous for e, t in zip(held.entities, held.unix_ms)], dtype=np.float64)
    scores = {name: trainer.score(spec, y, out) for name, out in outputs.items()}
    ev = KindEvaluation(
        kind, spec.metric, spec.unit, scores, trainer.beats(spec, scores["learned"], scores["baseline"]),
        result.replaced, result.reason, len(rows) - len(held), len(held), train_s=train_s,
        held=HeldOut(y, outputs, held.unix_ms, held.entities),
    )
    if spec.metric == "auc":
        ev.positives = int(y.sum())
        threshold = OPERATING_THRESHOLD[kind]
        ev.precision = {name: _precision(y, out, threshold) for name, out in outputs.items()}
        ev.recall = {name: _recall(y, out, threshold) for name, out in outputs.items()}
    if kind == "failure":
        ev.brier = {name: float(np.mean((np.clip(out, 0, 1) - y) ** 2)) for name, out in outputs.items()}
    if kind == "threat":
        ev.proxy_auc = {name: trainer.score(spec, held.y, out) for name, out in outputs.items()}
    return ev


def evaluate(seed: int = 0, scale: float = 1.0) -> tuple[list[KindEvaluation], dict[str, float]]:
    """(per-kind evaluations, timings and sizes) on a simulation of `seed` and `scale`."""
    start = time.perf_counter()
    sim = simulate(seed, scale)
    simulated = time.perf_counter()
    intake = Intake(LatencyBook())
    accepted = rejected = 0
    for batch in sim.batches:
        ok, bad = intake.ingest(telemetry_from_proto(batch))
        accepted, rejected = accepted + ok, rejected + bad
    ingested = time.perf_counter()
    results = [evaluate_kind(kind, intake, sim.anomalous, seed) for kind in KINDS]
    meta = {
        "seed": seed, "scale": scale, "messages": float(accepted + rejected), "rejected": float(rejected),
        "simulate_s": simulated - start, "ingest_s": ingested - simulated, "train_s": time.perf_counter() - ingested,
    }
    return results, meta


def as_json(results: list[KindEvaluation], meta: dict[str, float]) -> dict:
    def clean(v: object) -> object:  # NaN is not JSON
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    names = [f.name for f in fields(KindEvaluation) if f.name != "held"]
    return {"meta": meta, "kinds": [{k: clean(getattr(r, k)) for k in names} for r in results]}


def table(results: list[KindEvaluation]) -> str:
    """The evaluation as a text table, one line per kind plus detail lines for the classifiers."""

    def f(v: float) -> str:
        return "-" if math.isnan(v) else f"{v:.4g}"

    head = f"{'kind':<9} {'metric':<14} {'learned':>9} {'baseline':>9} {'prior':>9}  beats  served  train/held"
    lines = [head, "-" * len(head)]
    for r in results:
        metric = f"{r.metric.upper()} {r.unit}" if r.metric == "mae" else "AUC"
        s = [f(r.scores.get(n, math.nan)) for n in SCORERS]
        lines.append(
            f"{r.kind:<9} {metric:<14} {s[0]:>9} {s[1]:>9} {s[2]:>9}  {'yes' if r.beats_baseline else 'NO':<5}  "
            f"{'yes' if r.replaced else 'no':<6}  {r.training_rows}/{r.held_out_rows}"
        )
        if r.precision:
            at = str(OPERATING_THRESHOLD[r.kind])
            p = [f(r.precision[n]) for n in SCORERS]
            lines.append(f"{'':<9} {'precision@' + at:<14} {p[0]:>9} {p[1]:>9} {p[2]:>9}  ({r.positives} positives held out)")
            c = [f(r.recall[n]) for n in SCORERS]
            lines.append(f"{'':<9} {'recall@' + at:<14} {c[0]:>9} {c[1]:>9} {c[2]:>9}")
        if r.brier:
            b = [f(r.brier[n]) for n in SCORERS]
            lines.append(f"{'':<9} {'Brier':<14} {b[0]:>9} {b[1]:>9} {b[2]:>9}")
        if r.proxy_auc:
            a = [f(r.proxy_auc[n]) for n in SCORERS]
            lines.append(f"{'':<9} {'AUC proxy':<14} {a[0]:>9} {a[1]:>9} {a[2]:>9}  (the live loop's label)")
        if not r.scores:
            lines.append(f"{'':<9} not trained: {r.reason}")
    return "\n".join(lines)
