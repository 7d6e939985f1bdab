"""Domain -> mlos.scheduler.v1 messages of the admin extension (queues, predictions, admission)."""

from __future__ import annotations

from mlos.scheduler.v1 import scheduler_pb2 as spb
from mlos_scheduler.admission import AdmissionRecord
from mlos_scheduler.batcher import DynamicBatcher
from mlos_scheduler.domain import ModelInfo
from mlos_scheduler.predict import Prediction


def queue_stats(model: ModelInfo, batcher: DynamicBatcher) -> spb.QueueStats:
    st = batcher.stats()
    window = batcher.window
    return spb.QueueStats(
        model_name=model.name, model_version=model.version, pending=st.pending,
        in_flight_batches=st.in_flight, requests=st.requests, batches=st.batches,
        mean_batch_size=st.mean_batch_size, max_batch_size=model.max_batch_size,
        max_queue_delay_us=model.max_queue_delay_us,
        window_us=window.window_s * 1e6 if window is not None else 0.0,
        window_changes=window.changes if window is not None else 0,
        fast_path=st.fast_path, policy=batcher.policy.order,
    )


def prediction(p: Prediction, admits: bool, threshold: float) -> spb.PredictDeadlineResponse:
    slack = p.slack_s
    return spb.PredictDeadlineResponse(
        predicted_completion_ms=p.completion_s * 1e3,
        miss_probability=p.miss_probability,
        slack_ms=0.0 if slack is None else slack * 1e3,
        should_preempt=p.should_preempt,
        allowed_ms=0.0 if p.allowed_s is None else p.allowed_s * 1e3,
        queue_ms=p.queue_s * 1e3,
        execution_ms=p.execution_s * 1e3,
        network_ms=p.network_s * 1e3,
        queued_ahead=p.queued_ahead,
        basis=p.basis,
        would_admit=not admits or p.miss_probability <= threshold,
    )


def admission_stats(rec: AdmissionRecord) -> spb.AdmissionStats:
    bins = []
    width = 1.0 / len(rec.bins)
    for i, b in enumerate(rec.bins):
        bins.append(spb.ReliabilityBin(
            predicted_low=i * width, predicted_high=(i + 1) * width, count=b.count,
            mean_predicted=b.predicted_sum / b.count if b.count else 0.0,
            observed_miss_rate=b.missed / b.count if b.count else 0.0,
        ))
    return spb.AdmissionStats(
        model_name=rec.model, model_version=rec.version, priority=rec.priority, admitted=rec.admitted,
        rejected_predicted=rec.rejected_predicted, expired_queued=rec.expired_queued, met=rec.met,
        missed=rec.missed, cancelled=rec.cancelled, brier=rec.brier, brier_count=rec.brier_count,
        reliability=bins,
    )
