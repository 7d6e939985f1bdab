"""ViewFollower: keeps a ModelView equal to the registry, through its WatchModels stream.

    view = ModelView()
    follower = ViewFollower.to(addr, view)       # a background task; start() on the event loop
    follower.start()
    await view.wait_for(revision)                 # e.g. the revision a write returned

Each attempt opens a fresh channel (reconnecting on the follower's own backoff), then:
1. when the view has no snapshot yet (or the registry said OUT_OF_RANGE): ListModels -> replace;
2. WatchModels(since_revision=view.revision): every change after the last one applied, then live
   ones. A REGISTERED change is completed with one GetModel (the stream carries names only).
When the stream breaks (registry restarted, network), the follower waits a backoff
(initial_backoff_s doubling to max_backoff_s, reset once a stream is open) and resumes from the
revision it last applied, so it misses nothing; OUT_OF_RANGE (that revision was trimmed, or the
registry is another one) re-snapshots after the same backoff. A registry down at start costs retries,
never an error: the owner starts anyway and the view stays empty (`synced` false) meanwhile.

Every call goes through RegistryClient (typed errors); grpc is only the channel built here.
`WatchCollector` exports the state as mlos_registry_watch_* metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from mlos_common.bootstrap import client_channel, feed_channel_options
from mlos_common.config import ServiceSettings
from mlos_common.errors import MlosError, NotFound, OutOfRange
from mlos_registry.client import RegistryClient
from mlos_registry.domain import REGISTERED
from mlos_registry.model_view import Conditions, ModelView

log = logging.getLogger(__name__)

INITIAL_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0
CALL_TIMEOUT_S = 10.0


class ViewFollower:
    """Follows one registry into `view`; `connect()` makes a fresh RegistryClient per attempt."""

    def __init__(
        self,
        connect: Callable[[], RegistryClient],
        view: ModelView,
        *,
        addr: str = "",
        initial_backoff_s: float = INITIAL_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        self.view = view
        self.addr = addr  # for logs
        self._connect = connect
        self._initial_backoff_s = self._backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._task: asyncio.Task[None] | None = None
        self._resnapshot = True
        self.connected = False  # a watch stream is open now
        self.reconnects = 0  # attempts that ended (stream broken, registry unreachable)
        self.snapshots = 0  # ListModels snapshots applied (the first one included)
        self.last_error = ""
        self._conditions = Conditions()

    @classmethod
    def to(
        cls, addr: str, view: ModelView, settings: ServiceSettings | None = None, *,
        initial_backoff_s: float = INITIAL_BACKOFF_S, max_backoff_s: float = MAX_BACKOFF_S,
    ) -> ViewFollower:
        """A follower of the registry at `addr`, with a fresh channel per attempt."""
        options = feed_channel_options(settings, initial_backoff_s, max_backoff_s)

        def connect() -> RegistryClient:
            return RegistryClient(addr, timeout_s=CALL_TIMEOUT_S, channel=client_channel(addr, settings, options=options))

        return cls(connect, view, addr=addr, initial_backoff_s=initial_backoff_s, max_backoff_s=max_backoff_s)

    def start(self) -> None:
        """Starts following in the background (once; on the running event loop)."""
        self._task = self._task or asyncio.get_running_loop().create_task(self._run(), name=f"registry watch<-{self.addr}")

    async def close(self) -> None:
        """Stops following; the view keeps what it holds."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.connected = False

    async def _run(self) -> None:
        while True:
            client = self._connect()
            try:
                await self._follow(client)
                self.last_error = "the registry ended the watch stream"
            except OutOfRange as exc:
                self._resnapshot = True
                self.last_error = exc.message
                log.warning("registry watch from %s: %s; taking a fresh snapshot", self.addr, exc.message)
            except MlosError as exc:
                self.last_error = f"{exc.code}: {exc.message}"
            except Exception as exc:  # noqa: BLE001 - the follower must outlive one bad answer
                log.exception("registry watch from %s failed", self.addr)
                self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                await client.close()
            self._lost()
            await asyncio.sleep(self._backoff_s)  # after OUT_OF_RANGE too: a registry repeating it is not hammered
            self._backoff_s = min(self._backoff_s * 2, self._max_backoff_s)

    async def _follow(self, client: RegistryClient) -> None:
        if self._resnapshot or not self.view.synced:
            versions, revision = await client.listing()
            self.view.replace(versions, revision)
            self._resnapshot = False
            self.snapshots += 1
            log.info("registry watch: snapshot of %d model versions at revision %d from %s",
                     len(versions), revision, self.addr)
        async for change in client.watch(self.view.revision, on_open=self._opened):
            registered = None
            if change.kind == REGISTERED:
                try:
                    registered = await client.get(change.name, change.version)
                except NotFound:
                    pass  # deleted again meanwhile: its DELETED change follows
            self.view.apply(change, registered)

    async def wait_until(self, condition: Callable[[ViewFollower], bool], timeout_s: float | None = None) -> None:
        """Returns once `condition(self)` holds, checked as the connection state changes (tests)."""
        await self._conditions.wait(lambda: condition(self), timeout_s)

    def _opened(self) -> None:
        if not self.connected and self.reconnects:
            log.info("registry watch: reconnected to %s, resuming after revision %d", self.addr, self.view.revision)
        self.connected = True
        self._backoff_s = self._initial_backoff_s
        self._conditions.changed()

    def _lost(self) -> None:
        self.reconnects += 1
        if self.connected or self.reconnects == 1:
            log.warning("registry watch from %s lost or not reachable (%s); the view stays at revision %d, "
                        "retrying with backoff", self.addr, self.last_error, self.view.revision)
        self.connected = False
        self._conditions.changed()


class WatchCollector:
    """mlos_registry_watch_{connected, revision, synced, reconnects_total, snapshots_total,
    lookups_total{source}}: the follower's state, read at scrape time."""

    def __init__(self, follower: ViewFollower) -> None:
        self._follower = follower

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        f = self._follower
        yield GaugeMetricFamily("mlos_registry_watch_connected", "1 while the registry watch stream is open.",
                                value=int(f.connected))
        yield GaugeMetricFamily("mlos_registry_watch_synced", "1 once the model view holds a registry snapshot.",
                                value=int(f.view.synced))
        yield GaugeMetricFamily("mlos_registry_watch_revision", "The last registry revision the model view applied.",
                                value=f.view.revision)
        yield CounterMetricFamily("mlos_registry_watch_reconnects", "Watch attempts that ended (broken or refused).",
                                  value=f.reconnects)
        yield CounterMetricFamily("mlos_registry_watch_snapshots", "ListModels snapshots taken (first + re-syncs).",
                                  value=f.snapshots)
        lookups = CounterMetricFamily("mlos_registry_watch_lookups", "Model lookups answered by the view, or "
                                      "asked of the registry because the view did not hold the model.", labels=["source"])
        for source, count in f.view.lookups.items():
            lookups.add_metric([source], count)
        yield lookups
