"""Generation statistics: Prometheus series and ModelStatistics' response_stats, per model and priority.

Measured at the scheduler, from a request's arrival (Scheduler.generate) to each chunk:
- time to first token: arrival -> the first chunk with tokens; for a generation that is not
  streamed (one result at the end) the wait before it was sent + the executor's first_token_ns;
- inter-token latency: the gap between two chunks with tokens divided by the later chunk's
  tokens (one histogram observation per chunk; response_stats count tokens, so ns / count is
  the mean per token); not measured for generations that are not streamed;
- tokens/s: a finished generation's tokens / its whole time (arrival -> final chunk, TTFT included);
- finished generations by reason: the final chunk's ("length", "stop", "cancelled"), "cancelled"
  when the consumer left first, else the failure's status code in lower case.

response_stats keys (see ModelStatistics in grpc_service.proto): "first_token" (success),
"next_token" (success), "generation" (success = finished, fail = failed, cancel = cancelled),
each also as "<key>/priority=N".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from mlos_common.metrics import LATENCY_BUCKETS_S
from mlos_scheduler.domain import GenerationChunk

if TYPE_CHECKING:
    from mlos_scheduler.stats import ResponseStats

RATE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
KEYS = ("first_token", "next_token", "generation")


ResponsesOf = Callable[[str, int, str], "ResponseStats"]  # (model, version, key) -> its numbers


class GenerationMetrics:
    """The Prometheus series (labels model, version, priority)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["model", "version", "priority"]
        r = registry
        self.first_token = Histogram(
            "mlos_generation_first_token_seconds", "Time to first token: arrival at the scheduler to the first "
            "chunk with tokens.", labels, buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.inter_token = Histogram(
            "mlos_generation_inter_token_seconds", "Inter-token latency: gap between two chunks divided by the "
            "later chunk's tokens (one observation per chunk; streamed generations only).", labels,
            buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.rate = Histogram(
            "mlos_generation_tokens_per_second", "Tokens of each finished generation / its whole time "
            "(arrival to the final chunk).", labels, buckets=RATE_BUCKETS, registry=r,
        )
        self.tokens = Counter("mlos_generation_tokens", "Tokens generated.", labels, registry=r)
        self.finished = Counter(
            "mlos_generation_finished", "Generations ended, by reason: length, stop, cancelled, or the failure's "
            "status code in lower case.", [*labels, "reason"], registry=r,
        )
        self.cancelled = Counter(
            "mlos_generation_cancellations", "Generations the scheduler stopped on the executor because the "
            "consumer left (client cancelled or went away).", labels, registry=r,
        )


class GenerationRecord:
    """One generation's clock: `sent` before each try, `chunk` for each chunk, then at most one
    of `failed` / `cancelled` (a final chunk finishes it by itself). Anything after the end is ignored."""

    def __init__(self, spans: list[tuple[ResponseStats, ResponseStats]], series: list[Any], stream: bool,
                 started_ns: int, on_end: Callable[[str], None]) -> None:
        self.started_ns = self._last_ns = self.sent_ns = started_ns
        self.tokens = 0
        self.ended = False
        self._stream = stream
        self._on_end = on_end  # (reason)
        self.reason = ""  # why it ended: see the module's docstring
        self._first, self._inter, self._rate, self._tokens, self._cancelled = series
        self._spans = spans  # per KEYS: (the model's, the model's at this priority)

    def sent(self) -> None:
        self.sent_ns = time.perf_counter_ns()

    def chunk(self, chunk: GenerationChunk) -> None:
        if self.ended:
            return
        now = time.perf_counter_ns()
        if chunk.tokens:
            if not self.tokens:
                ttft_ns = now - self.started_ns
                if not self._stream and chunk.first_token_ns:
                    ttft_ns = self.sent_ns - self.started_ns + chunk.first_token_ns
                self._first.observe(ttft_ns / 1e9)
                for span in self._spans[0]:
                    span.success.add(ttft_ns)
            elif self._stream:
                gap_ns = now - self._last_ns
                self._inter.observe(gap_ns / chunk.tokens / 1e9)
                for span in self._spans[1]:
                    span.success.add(gap_ns, chunk.tokens)
            self.tokens += chunk.tokens
            self._tokens.inc(chunk.tokens)
            self._last_ns = now
        if chunk.final:
            whole_ns = now - self.started_ns
            if self.tokens:
                self._rate.observe(self.tokens / max(whole_ns / 1e9, 1e-9))
            self._end(chunk.finish_reason or "stop", whole_ns, "cancel" if chunk.finish_reason == "cancelled" else "success")

    def failed(self, code: str) -> None:
        if not self.ended:
            self._end(code.lower(), time.perf_counter_ns() - self.started_ns, "fail")

    def cancelled(self) -> None:
        if not self.ended:
            self._cancelled.inc()
            self._end("cancelled", time.perf_counter_ns() - self.started_ns, "cancel")

    def _end(self, reason: str, whole_ns: int, outcome: str) -> None:
        self.ended, self.reason = True, reason
        for span in self._spans[2]:
            getattr(span, outcome).add(whole_ns)
        self._on_end(reason)


class GenerationBook:
    """Records of every model's generations, into `responses_of(name, version, key)` and the metrics."""

    def __init__(self, registry: CollectorRegistry, responses_of: ResponsesOf) -> None:
        self.metrics = GenerationMetrics(registry)
        self._responses_of = responses_of

    def start(self, name: str, version: int, priority: int, stream: bool, started_ns: int) -> GenerationRecord:
        """A record for a generation that arrived at `started_ns` (time.perf_counter_ns)."""
        m, labels = self.metrics, (name, str(version), str(priority))
        series = [m.first_token.labels(*labels), m.inter_token.labels(*labels), m.rate.labels(*labels),
                  m.tokens.labels(*labels), m.cancelled.labels(*labels)]
        finished = m.finished

        def end(reason: str) -> None:
            finished.labels(*labels, reason).inc()

        of = self._responses_of
        spans = [(of(name, version, key), of(name, version, f"{key}/priority={priority}")) for key in KEYS]
        return GenerationRecord(spans, series, stream, started_ns, end)
