"""Aliases and the live change feed of the registry (domain logic, no grpc).

- Alias names follow the model-name rules, are not all digits (they would read as versions) and
  are not "latest" (implicit: the highest live version).
- ChangeFeed streams the recorded history: `watch(since)` yields every change after `since`
  from SQLite, then waits for new ones. Writers call `notify()` after each commit; a watcher
  remembers the notification count before each query, so a commit landing between its query and
  its wait wakes it at once: nothing is missed and nothing polls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from mlos_common.errors import InvalidArgument
from mlos_registry.domain import LATEST, ModelChange
from mlos_registry.errors import InvalidAliasName
from mlos_registry.store import MetadataStore

REPLAY_BATCH = 500


def validate_alias(alias: str, name_ok: bool) -> str:
    """`alias` if it may be set by a user; `name_ok` = it passes the model-name rules."""
    if not name_ok or alias.isdigit() or alias == LATEST:
        shown = alias if len(alias) <= 64 else alias[:64] + "..."
        raise InvalidAliasName(
            f"invalid alias {shown!r}: use the model-name rules (1-128 letters, digits, '_', '.', '-', not "
            f"starting with '.' or '-', no '..'), not all digits, and not {LATEST!r} (it is implicit)"
        )
    return alias


def check_version_or_alias(version: int, alias: str) -> None:
    """A request names a version or an alias, not both."""
    if version and alias:
        raise InvalidArgument(f"give version ({version}) or alias ({alias[:64]!r}), not both")


class ChangeFeed:
    """Live fan-out of the store's change history to any number of watchers (one event loop)."""

    def __init__(self, store: MetadataStore) -> None:
        self._store = store
        self._commits = 0
        self._changed = asyncio.Condition()

    async def notify(self) -> None:
        """Call after a write that recorded changes has committed."""
        async with self._changed:
            self._commits += 1
            self._changed.notify_all()

    async def _wait_past(self, seen: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._commits != seen)

    async def watch(self, since_revision: int) -> AsyncIterator[ModelChange]:
        """Every change after `since_revision`, then live ones, forever (until the caller stops).
        InvalidArgument if negative; HistoryTrimmed (OUT_OF_RANGE) if those changes are no longer kept."""
        if since_revision < 0:
            raise InvalidArgument(f"since_revision must be >= 0, got {since_revision}")
        last = since_revision
        while True:
            seen = self._commits
            changes = await self._store.changes_after(last, REPLAY_BATCH)
            for change in changes:
                yield change
                last = change.revision
            if not changes:
                await self._wait_past(seen)
