"""The learning loop: train on schedule or on demand, swap better models in, keep them in the registry.

`Learner.train(kinds)` trains each kind, one at a time, in a child process (trainproc.py:
trainer.train on a snapshot of its rows, so the event loop keeps serving), and, when the
candidate beats the baseline and the served model on held-out rows, swaps it into the kind's
ModelSlot, writes its ONNX file to `data_dir` and registers it as `mlos-predictor-<kind>` with
labels {kind, metric, score, baseline_score, training_rows, held_out_rows, estimator,
trained_unix_ms}; the registry's version goes into the slot's card. Without a model store (no
registry configured) or when the registry fails, the trained model is served unregistered
(version 0, source "trained") and registration is retried on the next scheduled round. A
training that takes longer than `train_timeout_s`, whose process dies, or that raises, leaves
the served model as it was; its outcome says "training failed: <why>" and the next training
starts a fresh process.

`run(interval_s)` trains, every interval, the `scheduled_kinds` with at least `min_new_rows` rows
labelled since their last judged training (a failed one is tried again next round). `restore()`
loads the latest registered version of each kind still answering with its prior, so a restarted
predictor serves what it had learned. `close()` stops the training process. Prometheus (given a
registry): `mlos_predictor_trainings_total{kind,result}`, result replaced, kept or failed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from prometheus_client import CollectorRegistry, Counter

from mlos_common.errors import MlosError
from mlos_predictor import trainer
from mlos_predictor.errors import TrainingOff
from mlos_predictor.intake import Intake
from mlos_predictor.kinds import KINDS, SPECS
from mlos_predictor.models import ModelCard, ModelSlot, OnnxModel
from mlos_predictor.rowstore import rows_of
from mlos_predictor.trainproc import TrainingFailed, TrainingPool, TrainJob, served_graph

log = logging.getLogger(__name__)


class ModelStore(Protocol):
    """Where trained models are kept (the registry; see registry_link.py)."""

    async def register(self, name: str, path: Path, labels: dict[str, str]) -> int:
        """Registers the file at `path` (readable by the store); returns its version."""
        ...

    async def latest(self, name: str, dest_dir: Path) -> tuple[int, dict[str, str], bytes] | None:
        """(version, labels, ONNX bytes) of the latest version of `name`, or None if none."""
        ...


@dataclass(frozen=True, slots=True)
class TrainOutcome:
    kind: str
    replaced: bool
    reason: str
    candidate_score: float
    card: ModelCard  # what answers for the kind now
    trained_pid: int = 0  # the process that fitted the candidate (0: none was fitted)


def card_labels(card: ModelCard, metric: str) -> dict[str, str]:
    return {
        "kind": card.kind, "metric": metric, "score": repr(card.score), "baseline_score": repr(card.baseline_score),
        "training_rows": str(card.training_rows), "held_out_rows": str(card.held_out_rows),
        "estimator": card.estimator, "trained_unix_ms": str(card.trained_unix_ms),
    }


def card_from_labels(kind: str, version: int, labels: Mapping[str, str]) -> ModelCard:
    """The card of a registered model from its labels (missing or unreadable figures stay unknown)."""

    def number(key: str, default: float) -> float:
        try:
            return float(labels[key])
        except (KeyError, ValueError):
            return default

    return ModelCard(
        kind=kind, source="trained", version=version, estimator=labels.get("estimator", ""),
        score=number("score", math.nan), baseline_score=number("baseline_score", math.nan),
        training_rows=int(number("training_rows", 0)), held_out_rows=int(number("held_out_rows", 0)),
        trained_unix_ms=int(number("trained_unix_ms", 0)),
    )


class Learner:
    def __init__(
        self,
        slots: dict[str, ModelSlot],
        intake: Intake,
        *,
        store: ModelStore | None = None,
        data_dir: Path | None = None,
        min_rows: int = 200,
        min_new_rows: int = 100,
        seed: int = 0,
        scheduled_kinds: Sequence[str] = KINDS,
        train_timeout_s: float = 300.0,
        train_memory_limit_mb: int = 2048,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.slots = slots
        self.intake = intake
        self.store = store
        self.data_dir = data_dir
        self.min_rows = min_rows
        self.min_new_rows = min_new_rows
        self.seed = seed
        self.scheduled_kinds = tuple(scheduled_kinds)
        self.train_timeout_s = train_timeout_s
        self.pool = TrainingPool(train_memory_limit_mb)
        self.off_reason = trainer.unavailable()
        self._trained_at_added: dict[str, int] = {}
        self._unregistered: set[str] = set()  # kinds serving a trained model the store does not have yet
        self._lock = asyncio.Lock()
        self._trainings = (
            Counter(
                "mlos_predictor_trainings", "Trainings of a kind, by result (replaced, kept, failed).",
                ["kind", "result"], registry=registry,
            )
            if registry is not None
            else None
        )  # fmt: skip

    async def train(self, kinds: Sequence[str], *, only_new: bool = False) -> list[TrainOutcome]:
        """Trains `kinds` now (`only_new`: those with min_new_rows new labelled rows)."""
        if self.off_reason is not None:
            raise TrainingOff(self.off_reason)
        async with self._lock:
            return [await self._train_one(kind, only_new) for kind in kinds]

    async def _train_one(self, kind: str, only_new: bool) -> TrainOutcome:
        store, slot = self.intake.stores()[kind], self.slots[kind]
        added = store.added
        new = added - self._trained_at_added.get(kind, 0)
        if only_new and new < self.min_new_rows:
            reason = f"{new} rows labelled since the last training; waiting for {self.min_new_rows}"
            return TrainOutcome(kind, False, reason, math.nan, slot.card)
        now_ms = time.time_ns() // 1_000_000
        served = served_graph(slot.model)
        rows = await asyncio.to_thread(rows_of, store.labelled(), SPECS[kind].width)
        try:
            reply = await self.pool.train(TrainJob(kind, rows, served, self.min_rows, self.seed, now_ms), self.train_timeout_s)
        except TrainingFailed as exc:
            reason = f"training failed: {exc}"
            log.warning("training %s: %s", kind, reason)
            self._count(kind, "failed")
            return TrainOutcome(kind, False, reason, math.nan, slot.card)
        if reply.card is not None:  # a candidate was judged: these rows are spent
            self._trained_at_added[kind] = added
        reason = reply.reason
        if reply.replaced and reply.onnx_bytes is not None and reply.card is not None:
            slot.swap(await asyncio.to_thread(_loaded, kind, reply.onnx_bytes), reply.card)
            self._unregistered.add(kind)
            reason += await self._register(kind)
        log.info("training %s (in process %d): %s", kind, reply.pid, reason)
        self._count(kind, "replaced" if reply.replaced else "kept")
        return TrainOutcome(kind, reply.replaced, reason, reply.candidate_score, slot.card, reply.pid)

    def _count(self, kind: str, result: str) -> None:
        if self._trainings is not None:
            self._trainings.labels(kind, result).inc()

    async def close(self) -> None:
        """Stops the training process (killed if it is training)."""
        await self.pool.close()

    async def _register(self, kind: str) -> str:
        """Registers the kind's served model; says how that went, to append to a reason."""
        slot = self.slots[kind]
        model = slot.model
        if self.store is None or self.data_dir is None or not isinstance(model, OnnxModel):
            return "; served, not registered (no registry configured)"
        name = SPECS[kind].registry_name
        path = self.data_dir / f"{name}-{slot.card.trained_unix_ms}.onnx"
        try:
            await asyncio.to_thread(_write, path, model.onnx_bytes)
            version = await self.store.register(name, path, card_labels(slot.card, SPECS[kind].metric))
        except (MlosError, OSError) as exc:
            log.warning("could not register %s (will retry): %s", name, exc)
            return f"; served, not registered yet: {exc}"
        if slot.model is model:  # not replaced meanwhile
            slot.with_version(version)
            self._unregistered.discard(kind)
        return f"; registered as {name} version {version}"

    async def register_pending(self) -> None:
        for kind in sorted(self._unregistered):
            await self._register(kind)

    async def restore(self) -> dict[str, int]:
        """Loads the latest registered model of every kind still on its prior; returns the
        versions loaded. Raises the store's error when it cannot be reached."""
        loaded: dict[str, int] = {}
        if self.store is None or self.data_dir is None:
            return loaded
        await asyncio.to_thread(self.data_dir.mkdir, parents=True, exist_ok=True)
        for kind in KINDS:
            slot = self.slots[kind]
            if slot.card.source != "prior":
                continue
            found = await self.store.latest(SPECS[kind].registry_name, self.data_dir)
            if found is None:
                continue
            version, labels, onnx_bytes = found
            try:
                model = await asyncio.to_thread(_loaded, kind, onnx_bytes)
            except Exception as exc:  # a broken artifact must not stop the others or the service
                log.warning("registered %s version %d does not load: %s", SPECS[kind].registry_name, version, exc)
                continue
            if slot.card.source == "prior":
                slot.swap(model, card_from_labels(kind, version, labels))
                loaded[kind] = version
        return loaded

    async def restore_until_done(self, first_wait_s: float = 0.5, max_wait_s: float = 10.0) -> dict[str, int]:
        """restore(), retried with backoff while the registry cannot be reached."""
        wait_s = first_wait_s
        while True:
            try:
                loaded = await self.restore()
            except MlosError as exc:
                log.info("registry not reachable for the learned models (retrying in %.1f s): %s", wait_s, exc)
                await asyncio.sleep(wait_s)
                wait_s = min(wait_s * 2, max_wait_s)
                continue
            if loaded:
                log.info("loaded learned models from the registry: %s", loaded)
            return loaded

    async def run(self, interval_s: float) -> None:
        """Every `interval_s`: trains the scheduled kinds with enough new rows, retries registrations."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                if self.off_reason is None:
                    await self.train(self.scheduled_kinds, only_new=True)
                await self.register_pending()
            except Exception:  # a failed round must not end the loop; the next one tries again
                log.exception("learning round failed")


def _loaded(kind: str, onnx_bytes: bytes) -> OnnxModel:
    """The registered model of `kind`, checked to answer one row of the kind's width."""
    spec = SPECS[kind]
    model = OnnxModel(spec, onnx_bytes)
    out = model.predict(np.zeros((1, spec.width)))
    if out.shape != (1,):
        raise ValueError(f"it answers shape {out.shape} for one row of {spec.width} features")
    return model


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)
