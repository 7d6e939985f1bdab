"""Start-up models: loaded by the scheduler itself; the server is ready only when all are loaded.

Triton's strict readiness: a client polling ServerReady (or grpc.health "") must not see the
server ready while a model it was started with is still loading. A model that fails to load
keeps the server not ready; the reason is logged once per distinct failure, kept in `errors`
(shared with the core, so RepositoryIndex shows it as the model's reason), and the load is retried on every
round (e.g. the model is registered a moment later).
No grpc here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mlos_common.errors import MlosError

log = logging.getLogger(__name__)


def parse_names(text: str) -> tuple[str, ...]:
    """'a, b,,c' -> ('a', 'b', 'c'), duplicates dropped, order kept."""
    return tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


@dataclass
class StartupModels:
    names: tuple[str, ...]
    load: Callable[[str], Awaitable[object]]
    loaded: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)  # name -> why its last load failed

    @property
    def done(self) -> bool:
        return self.loaded.issuperset(self.names)

    async def load_pending(self) -> bool:
        """Tries every start-up model not loaded yet; True when all are loaded afterwards."""
        for name in self.names:
            if name in self.loaded:
                continue
            try:
                await self.load(name)
            except MlosError as exc:
                why = f"{exc.code}: {exc.message}"
                if self.errors.get(name) != why:
                    log.error("start-up model %r is not loaded, so the server is not ready: %s", name, why)
                self.errors[name] = why
                continue
            self.loaded.add(name)
            self.errors.pop(name, None)
            log.info("start-up model %r loaded", name)
        return self.done

    def reason(self) -> str:
        """Why the server is not ready yet, in words ("" when every start-up model is loaded)."""
        waiting = [f"{n} ({self.errors[n]})" if n in self.errors else n for n in self.names if n not in self.loaded]
        return f"start-up models not loaded: {', '.join(waiting)}" if waiting else ""
