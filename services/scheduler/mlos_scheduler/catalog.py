"""Registry -> scheduler ModelInfo: from the registry's model view, else through its client."""

from __future__ import annotations

import asyncio
from functools import partial

from mlos_common.signatures import TensorSpec
from mlos_registry.client import RegistryClient
from mlos_registry.domain import DELETED, ModelChange, ModelVersion
from mlos_registry.follow import ViewFollower
from mlos_scheduler.core import Scheduler
from mlos_scheduler.domain import ModelInfo


def model_info(mv: ModelVersion) -> ModelInfo:
    c = mv.config
    return ModelInfo(
        name=mv.name,
        version=mv.version,
        sha256=mv.sha256,
        inputs=tuple(TensorSpec(s.name, s.datatype, tuple(s.shape)) for s in mv.inputs),
        outputs=tuple(TensorSpec(s.name, s.datatype, tuple(s.shape)) for s in mv.outputs),
        max_batch_size=c.max_batch_size,
        max_queue_delay_us=c.max_queue_delay_us,
        instance_count=c.instance_count,
        device=c.device or "auto",
        default_timeout_us=c.default_timeout_us,
        default_priority=c.default_priority,
        priority_levels=c.priority_levels,
        preferred_batch_sizes=tuple(c.preferred_batch_sizes),
        warmup_batch_sizes=tuple(c.warmup_batch_sizes),
        task=mv.task,
        facts=tuple(sorted(mv.facts.items())),
        context_length=c.context_length,
        threads=c.threads,
        chunk_tokens=c.chunk_tokens,
        gpu_layers=c.gpu_layers,
        contexts=c.contexts,
        platform="llama_cpp_gguf" if mv.format == "gguf" else "onnxruntime_onnx",
    )


class RegistryCatalog:
    """The scheduler's model lookups, answered from the registry's model view (kept current by a
    ViewFollower on WatchModels), so no GetModel runs on the request path for a known model.

    Rule: a version the view holds is answered from the view. When the view does not hold it
    (not synced yet, the registry was down at start, or the stream lags behind a fresh
    registration), one GetModel asks the registry itself; the view catches up on its own. A
    version deleted from the registry is retired from the scheduler (`Scheduler.retire`) as its
    deletion arrives. `follower` None = no view: every lookup asks the registry (the old way).
    """

    def __init__(self, client: RegistryClient, follower: ViewFollower | None = None) -> None:
        self.client = client
        self.follower = follower
        self.view = follower.view if follower is not None else None
        self._retiring: set[asyncio.Task] = set()

    async def lookup(self, name: str, version: int) -> ModelInfo:
        if self.view is not None:
            mv = self.view.get(name, version)
            if mv is not None:
                self.view.lookups["view"] += 1
                return model_info(mv)
            self.view.lookups["registry"] += 1
        return model_info(await self.client.get(name, version))

    async def lister(self) -> list[ModelInfo]:
        if self.view is not None and self.view.synced:
            return [model_info(m) for m in self.view.listing()]
        return [model_info(m) for m in await self.client.list()]

    def resolve(self, name: str, version: str) -> int:
        """Scheduler.resolve: "" = the view's latest version of `name`, a word = its alias (0 = unknown)."""
        if self.view is None:
            return 0
        return self.view.alias(name, version) if version else self.view.latest(name)

    def follow(self, core: Scheduler) -> None:
        """Wires `core` to the view (versions, aliases, deletions) and starts following."""
        if self.follower is None:
            return
        core.resolve = self.resolve
        self.follower.view.add_listener(partial(self._changed, core))
        self.follower.start()

    def _changed(self, core: Scheduler, change: ModelChange) -> None:
        if change.kind == DELETED and (change.name, change.version) in core.served:
            task = asyncio.get_running_loop().create_task(core.retire(change.name, change.version))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def retired(self) -> None:
        """Returns once every deletion applied to the view so far has been retired."""
        await asyncio.gather(*self._retiring, return_exceptions=True)

    async def close(self) -> None:
        if self.follower is not None:
            await self.follower.close()
        for task in list(self._retiring):
            task.cancel()
        await self.client.close()
