"""ModelView: an in-memory copy of the registry's models, kept current by a follower (no grpc).

The view holds, per model name, its live versions (full ModelVersion records), its user-defined
aliases and its latest version (the highest live one), and the registry revision it reflects.
It changes only through `replace` (a ListModels snapshot) and `apply` (one WatchModels change, in
revision order), both on the event loop, so readers see a consistent view without locks.

Contracts:
- `revision` is the last registry revision applied; `wait_for(r)` returns once it is >= r
  (read-your-writes: a writer that got revision r back waits for it before reading the view).
- `apply` ignores a change at or below `revision` (a replay overlap is harmless).
- Listeners get every applied change after the view changed; a `replace` hands them one
  synthetic DELETED change per version the snapshot no longer has (so a version deleted while
  the follower was cut off is still retired) and one REGISTERED per new version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from mlos_registry.domain import ALIAS_DELETED, ALIAS_SET, DELETED, LATEST, REGISTERED, ModelChange, ModelVersion

Listener = Callable[[ModelChange], None]


class Conditions:
    """Waiters for conditions on some state, re-checked each time the owner says it changed."""

    def __init__(self) -> None:
        self._waiting: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    async def wait(self, condition: Callable[[], bool], timeout_s: float | None = None) -> None:
        """Returns once `condition()` holds (TimeoutError after `timeout_s`)."""
        if condition():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((condition, future))
        await asyncio.wait_for(future, timeout_s)

    def changed(self) -> None:
        waiting, self._waiting = self._waiting, []
        for condition, future in waiting:
            if future.done():
                continue
            if condition():
                future.set_result(None)
            else:
                self._waiting.append((condition, future))


@dataclass
class ModelEntry:
    """One model's live versions and aliases."""

    versions: dict[int, ModelVersion] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)

    @property
    def latest(self) -> int:
        """The highest live version (0 = none)."""
        return max(self.versions, default=0)

    def refresh_aliases(self, version: int) -> None:
        """Keeps the `aliases` field of one stored ModelVersion equal to the alias table."""
        mv = self.versions.get(version)
        if mv is not None:
            named = tuple(sorted(a for a, v in self.aliases.items() if v == version))
            self.versions[version] = replace(mv, aliases=named)


class ModelView:
    """The models the registry holds, as of `revision`. `synced` once a snapshot was applied."""

    def __init__(self) -> None:
        self.models: dict[str, ModelEntry] = {}
        self.revision = 0
        self.synced = False
        self.applied_changes = 0
        self.lookups = {"view": 0, "registry": 0}  # answered here / asked of the registry (owners count)
        self._listeners: list[Listener] = []
        self._conditions = Conditions()

    def add_listener(self, listener: Listener) -> None:
        """`listener(change)` after each change is applied; it must not block or raise."""
        self._listeners.append(listener)

    # ---- reading ----

    def knows(self, name: str) -> bool:
        return name in self.models

    def get(self, name: str, version: int = 0, alias: str = "") -> ModelVersion | None:
        """`version`, or the one `alias` points to ("latest" or 0 = the highest); None if unknown here."""
        entry = self.models.get(name)
        if entry is None:
            return None
        if alias and alias != LATEST:
            version = entry.aliases.get(alias, -1)
        return entry.versions.get(version or entry.latest)

    def latest(self, name: str) -> int:
        """The highest live version of `name` (0 = unknown here)."""
        entry = self.models.get(name)
        return entry.latest if entry is not None else 0

    def alias(self, name: str, alias: str) -> int:
        """The version `alias` of `name` points to (0 = unknown here)."""
        entry = self.models.get(name)
        return entry.aliases.get(alias, 0) if entry is not None else 0

    def listing(self, name: str = "") -> list[ModelVersion]:
        """Every live version (of `name`, or of every model), ordered by name then version."""
        names = [name] if name else sorted(self.models)
        return [
            mv for n in names if n in self.models for _, mv in sorted(self.models[n].versions.items())
        ]

    # ---- changing ----

    def replace(self, versions: Iterable[ModelVersion], revision: int) -> None:
        """Swaps in a ListModels snapshot taken at `revision`."""
        old = {(n, v) for n, e in self.models.items() for v in e.versions}
        models: dict[str, ModelEntry] = {}
        for mv in versions:
            entry = models.setdefault(mv.name, ModelEntry())
            entry.versions[mv.version] = mv
            entry.aliases.update((a, mv.version) for a in mv.aliases)
        self.models = models
        self.revision = revision
        self.synced = True
        new = {(n, v) for n, e in models.items() for v in e.versions}
        gone = [ModelChange(revision, DELETED, n, v) for n, v in sorted(old - new)]
        added = [ModelChange(revision, REGISTERED, n, v) for n, v in sorted(new - old)]
        self._advance(gone + added)

    def apply(self, change: ModelChange, registered: ModelVersion | None = None) -> None:
        """One change of the registry's history. `registered`: the version a REGISTERED change
        names (None if it was deleted again before it could be read; its DELETED change follows)."""
        if change.revision <= self.revision:
            return
        entry = self.models.get(change.name)
        if change.kind == REGISTERED and registered is not None:
            entry = self.models.setdefault(change.name, ModelEntry())
            entry.versions[change.version] = registered
        elif entry is not None and change.kind == DELETED:
            entry.versions.pop(change.version, None)
            for alias in [a for a, v in entry.aliases.items() if v == change.version]:
                del entry.aliases[alias]
            if not entry.versions:
                del self.models[change.name]
        elif entry is not None and change.kind in (ALIAS_SET, ALIAS_DELETED):
            previous = entry.aliases.pop(change.alias, 0)
            if change.kind == ALIAS_SET:
                entry.aliases[change.alias] = change.version
            entry.refresh_aliases(previous)
            entry.refresh_aliases(change.version)
        self.revision = change.revision
        self._advance([change])

    def _advance(self, changes: list[ModelChange]) -> None:
        self.applied_changes += len(changes)
        for change in changes:
            for listener in self._listeners:
                listener(change)
        self._conditions.changed()

    async def wait_for(self, revision: int, timeout_s: float | None = None) -> None:
        """Returns once the view is synced and has applied `revision` (TimeoutError after `timeout_s`)."""
        await self._conditions.wait(lambda: self.synced and self.revision >= revision, timeout_s)
