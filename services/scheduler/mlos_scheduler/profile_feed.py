"""ProfileFeed: the scheduler's subscription to the predictor's latency profiles.

A background task keeps one WatchLatencyProfiles stream open and writes every profile it
receives into the ProfileBook as a "telemetry" point (mean and std in seconds, with the
execution count, so points from too few executions stay untrusted). When the predictor is
down or the stream breaks it reconnects with exponential backoff (initial_backoff_s doubling to
max_backoff_s, reset once a snapshot arrives). Nothing on a request's path waits for it: the
book is read locally. Points from a predictor that went away stay in the book until a newer
profile replaces them (a restarted predictor starts empty; old figures beat none).
An empty address means no feed: start() does nothing and the book keeps its other sources.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from grpc import aio

from mlos_common.bootstrap import channel_options
from mlos_common.config import ServiceSettings
from mlos_common.errors import MlosError
from mlos_predictor.client import PredictorClient, ProfileUpdate
from mlos_scheduler.profiles import ProfileBook

log = logging.getLogger(__name__)

INITIAL_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


class ProfileFeed:
    def __init__(
        self,
        addr: str,
        book: ProfileBook,
        *,
        settings: ServiceSettings | None = None,
        interval_ms: int = 0,
        initial_backoff_s: float = INITIAL_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        """`interval_ms`: the predictor's minimum spacing of updates (0 = its default, 500 ms)."""
        self.addr = addr
        self.book = book
        self._interval_ms = interval_ms
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._options = channel_options(settings or ServiceSettings()) + [
            # a fresh channel per attempt must not inherit a shared subchannel's reconnect backoff
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.initial_reconnect_backoff_ms", int(initial_backoff_s * 1000)),
            ("grpc.min_reconnect_backoff_ms", int(initial_backoff_s * 1000)),
            ("grpc.max_reconnect_backoff_ms", int(max_backoff_s * 1000)),
        ]
        self._task: asyncio.Task[None] | None = None
        self.connected = False  # a snapshot arrived on the current stream
        self.snapshots = 0  # streams that delivered their snapshot (reconnects = snapshots - 1)
        self.updates = 0  # messages received, snapshots included
        self.profiles = 0  # profiles written into the book
        self.last_error = ""

    def start(self) -> None:
        if self.addr and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"profiles<-{self.addr}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected = False

    async def _run(self) -> None:
        backoff_s = self._initial_backoff_s
        while True:
            try:
                channel = aio.insecure_channel(self.addr, options=self._options)
                async with PredictorClient(self.addr, channel=channel) as client:
                    async for update in client.watch_profiles(interval_ms=self._interval_ms):
                        if update.snapshot:
                            self._on_snapshot()
                            backoff_s = self._initial_backoff_s
                        self._apply(update)
                self.last_error = "the predictor ended the stream"
            except MlosError as exc:
                self.last_error = exc.message
            except Exception as exc:  # noqa: BLE001 - the feed must outlive one bad stream
                log.exception("latency profile stream from %s failed", self.addr)
                self.last_error = f"{type(exc).__name__}: {exc}"
            if self.connected:
                log.warning("latency profiles from %s lost (%s); reconnecting", self.addr, self.last_error)
            self.connected = False
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, self._max_backoff_s)

    def _on_snapshot(self) -> None:
        self.connected = True
        self.snapshots += 1
        log.info("latency profiles from %s: subscribed (stream %d)", self.addr, self.snapshots)

    def _apply(self, update: ProfileUpdate) -> None:
        self.updates += 1
        for p in update.profiles:
            self.book.set(
                p.model_name, p.model_version, p.batch_size, p.mean_ms / 1000, p.std_ms / 1000, "telemetry",
                count=p.count,
            )
        self.profiles += len(update.profiles)
