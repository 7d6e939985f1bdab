"""The scheduler's links to the predictor: latency profiles and scores in, request telemetry out.

- ProfileFeed (profile_feed.py): latency profiles into the core's ProfileBook.
- ScoreFeed (score_feed.py): failure and threat scores into the core's ScoreTable; after each
  poll the routing (risk.py) and the threat gate (threat.py) review their decisions.
- Telemetry: every `rate_window_s` one RateSample per served model (requests received, admitted
  or refused), every `client_window_s` one ClientSample per client that sent anything (see
  client_stats.py), offered to a TelemetryStreamer: offer() never blocks, drops are counted.
  The streamer's counts are Prometheus series (`mlos_scheduler_telemetry_*`).
With no predictor address nothing starts, and the core's front door stays inactive.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from mlos.predictor.v1 import predictor_pb2
from mlos_predictor.client import TelemetryStreamer
from mlos_scheduler.client_stats import ClientBook, ClientWindow
from mlos_scheduler.config import SchedulerSettings
from mlos_scheduler.core import Scheduler
from mlos_scheduler.feed import INITIAL_BACKOFF_S, MAX_BACKOFF_S
from mlos_scheduler.profile_feed import ProfileFeed
from mlos_scheduler.score_feed import ScoreFeed


def rate_samples(counts: list[tuple[str, int]], unix_ms: int, window_s: float) -> list[predictor_pb2.RateSample]:
    """RateSamples of one closed window: (model, requests) each."""
    return [
        predictor_pb2.RateSample(model_name=model, unix_ms=unix_ms, window_s=window_s, requests=requests)
        for model, requests in counts
    ]


def client_samples(windows: list[ClientWindow], unix_ms: int, window_s: float) -> list[predictor_pb2.ClientSample]:
    """ClientSamples of one closed window, one per client that sent anything."""
    return [
        predictor_pb2.ClientSample(
            client=w.client, unix_ms=unix_ms, window_s=window_s, requests=w.requests, malformed=w.malformed,
            shape_errors=w.shape_errors, bytes_mean=w.bytes_mean, bytes_max=w.bytes_max,
            value_absmax=w.value_absmax, values_sampled=w.values_sampled, nonfinite=w.nonfinite,
        )
        for w in windows
    ]


class TelemetryCollector:
    """Prometheus series of the scheduler's telemetry stream and of the clients it tracks."""

    def __init__(self, streamer: TelemetryStreamer, clients: ClientBook | None) -> None:
        self._streamer = streamer
        self._clients = clients

    def collect(self) -> Iterator[Metric]:
        st = self._streamer.stats()
        counters = (
            ("offered", "Telemetry samples accepted into the buffer for the predictor.", st.offered),
            ("dropped", "Telemetry samples dropped: the buffer was full (the predictor away or slow).", st.dropped),
            ("sent", "Telemetry samples written into a stream to the predictor.", st.sent),
            ("acked", "Telemetry samples the predictor acknowledged as accepted (known when a stream ends).", st.acked),
            ("rejected", "Telemetry samples the predictor acknowledged as rejected.", st.rejected),
            ("reconnects", "Telemetry streams opened after the first.", st.reconnects),
        )
        for name, doc, value in counters:
            family = CounterMetricFamily(f"mlos_scheduler_telemetry_{name}", doc)
            family.add_metric([], value)
            yield family
        yield GaugeMetricFamily("mlos_scheduler_telemetry_queued", "Telemetry samples waiting to be sent.", value=st.queued)
        yield GaugeMetricFamily(
            "mlos_scheduler_telemetry_connected", "1 while a telemetry stream to the predictor is open.",
            value=int(st.connected),
        )
        if self._clients is not None:
            evicted = CounterMetricFamily(
                "mlos_scheduler_telemetry_clients_evicted",
                "Clients dropped from a window's counts because max_tracked_clients were tracked already.",
            )
            evicted.add_metric([], self._clients.evicted)
            yield evicted
            yield GaugeMetricFamily(
                "mlos_scheduler_telemetry_tracked_clients", "Clients counted in the current window.",
                value=len(self._clients),
            )


class PredictorLink:
    def __init__(
        self, settings: SchedulerSettings, core: Scheduler, registry: CollectorRegistry | None = None,
        *, initial_backoff_s: float = INITIAL_BACKOFF_S, max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        """`initial_backoff_s`/`max_backoff_s`: the feeds' and the stream's reconnect backoff."""
        self.addr = settings.predictor_addr
        self._core = core
        self._rate_window_s = settings.rate_window_s
        self._client_window_s = settings.client_window_s
        b0, b1 = initial_backoff_s, max_backoff_s
        self.profiles = ProfileFeed(self.addr, core.profiles, settings=settings, initial_backoff_s=b0, max_backoff_s=b1)
        self.scores: ScoreFeed | None = None
        self.streamer: TelemetryStreamer | None = None
        if core.scores is not None:
            self.scores = ScoreFeed(
                self.addr, core.scores, interval_s=settings.scores_interval_ms / 1000, on_poll=self.review,
                settings=settings, initial_backoff_s=b0, max_backoff_s=b1,
            )
        if self.addr:
            self.streamer = TelemetryStreamer(self.addr, settings=settings, initial_backoff_s=b0, max_backoff_s=b1)
            if registry is not None:
                registry.register(TelemetryCollector(self.streamer, core.door.clients))
        self._tasks: list[asyncio.Task[None]] = []
        self._opened_s = dict.fromkeys(("rates", "clients"), time.monotonic())

    def review(self) -> None:
        """After each poll of the scores: routing and the threat gate note what changed."""
        risk, gate = self._core.dispatcher.risk, self._core.door.gate
        if risk is not None:
            risk.review(self._core.executors)
        if gate is not None:
            gate.review()

    def start(self) -> None:
        if not self.addr or self._tasks:
            return
        self.profiles.start()
        if self.scores is not None:
            self.scores.start()
        if self.streamer is not None:
            self.streamer.start()
            loop = asyncio.get_running_loop()
            self._tasks += [
                loop.create_task(self._every(self._rate_window_s, self.flush_rates)),
                loop.create_task(self._every(self._client_window_s, self.flush_clients)),
            ]

    async def _every(self, period_s: float, flush: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(period_s)
            flush()

    def flush_rates(self) -> None:
        """Closes the rate window: one RateSample per served model to the streamer."""
        rates, window_s = self._core.door.rates, self._window_s("rates")
        if rates is not None and self.streamer is not None:
            for sample in rate_samples(rates.drain(), int(time.time() * 1000), window_s):
                self.streamer.offer(sample)

    def flush_clients(self) -> None:
        """Closes the client window: one ClientSample per client that sent anything."""
        clients, window_s = self._core.door.clients, self._window_s("clients")
        if clients is not None and self.streamer is not None:
            for sample in client_samples(clients.drain(), int(time.time() * 1000), window_s):
                self.streamer.offer(sample)

    def _window_s(self, which: str) -> float:
        """Seconds since the `which` window opened (the last flush, or the link's creation)."""
        now_s = time.monotonic()
        opened_s, self._opened_s[which] = self._opened_s[which], now_s
        return now_s - opened_s

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.scores is not None:
            await self.scores.close()
        await self.profiles.close()
        if self.streamer is not None:
            await self.streamer.close()
