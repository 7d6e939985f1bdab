"""The executor's side of the registry's model view (see mlos_registry.follow): prefetch resolves
"latest" from the view, and a version deleted from the registry is unloaded here once it has no
work in flight.

No grpc here: the view is kept current by a ViewFollower the server starts; `ask` is the
on-demand fallback (RegistryPeer.latest: one GetModel) for a model the view does not hold (not
synced yet, or the stream lags a fresh registration).

Deletion: the view's DELETED change for a version loaded here starts a background task that waits
until the version has no batch running and no generation open (checked every `idle_check_s`),
then unloads it (ExecutorCore.unload), logs it and counts it in `deleted_unloads`
(mlos_executor_deleted_unloads_total).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator

from prometheus_client.core import CounterMetricFamily

from mlos_executor.core import ExecutorCore, LoadedModel
from mlos_executor.llama_models import GenerationModel
from mlos_executor.prefetch import Target
from mlos_registry.domain import DELETED, ModelChange, ModelVersion
from mlos_registry.model_view import ModelView

log = logging.getLogger(__name__)

IDLE_CHECK_S = 0.05


def busy(loaded: LoadedModel) -> bool:
    """Whether a loaded version has a batch running or a generation open."""
    model = loaded.model
    return loaded.in_flight > 0 or (isinstance(model, GenerationModel) and bool(model.scheduler.open))


class RegistryFollow:
    """Prefetch's `resolve` from the view, and unloads of deleted versions, for one ExecutorCore."""

    def __init__(
        self, core: ExecutorCore, view: ModelView, ask: Callable[[str], Awaitable[Target]],
        target: Callable[[ModelVersion], Target], idle_check_s: float = IDLE_CHECK_S,
    ) -> None:
        self.core = core
        self.view = view
        self._ask = ask
        self._target = target
        self._idle_check_s = idle_check_s
        self._unloading: set[asyncio.Task] = set()
        self.deleted_unloads = 0
        view.add_listener(self._changed)

    async def latest(self, name: str) -> Target:
        """The latest registered version of `name`: from the view, else one registry lookup."""
        mv = self.view.get(name)
        if mv is not None:
            self.view.lookups["view"] += 1
            return self._target(mv)
        self.view.lookups["registry"] += 1
        return await self._ask(name)

    def _changed(self, change: ModelChange) -> None:
        key = (change.name, change.version)
        if change.kind == DELETED and key in self.core.models:
            task = asyncio.get_running_loop().create_task(self._unload_when_idle(key))
            self._unloading.add(task)
            task.add_done_callback(self._unloading.discard)

    async def _unload_when_idle(self, key: tuple[str, int]) -> None:
        while (loaded := self.core.models.get(key)) is not None and busy(loaded):
            await asyncio.sleep(self._idle_check_s)
        if loaded is None:
            return  # unloaded meanwhile (the scheduler's Unload, memory eviction)
        self.core.unload(*key)
        self.deleted_unloads += 1
        log.info("unloaded %s v%d: it was deleted from the registry (revision %d)", key[0], key[1], self.view.revision)

    async def settled(self) -> None:
        """Returns once every unload started so far has finished."""
        await asyncio.gather(*self._unloading, return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._unloading):
            task.cancel()
        await self.settled()


class DeletedUnloadsCollector:
    """mlos_executor_deleted_unloads_total: versions unloaded because the registry deleted them."""

    def __init__(self, follow: RegistryFollow) -> None:
        self._follow = follow

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily("mlos_executor_deleted_unloads", "Model versions unloaded here because they "
                                  "were deleted from the registry (once no work was in flight).",
                                  value=self._follow.deleted_unloads)
