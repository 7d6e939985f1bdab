"""Aliases and the change history of the registry, as SQL on the metadata store's connection.

Every function here runs on the MetadataStore's own thread, inside the caller's transaction where
it writes, so an alias move, a refused delete or a recorded change commits (or rolls back) with the
rows it belongs to. Kept apart from store.py so that file stays about versions and blobs.

Contracts:
- `changes.revision` is AUTOINCREMENT: strictly increasing and never reused, even after the oldest
  changes are trimmed (only the last `keep` are kept) and across restarts on the same data dir.
- An alias always points at a live version: deleting that version is refused, or with force the
  alias is deleted in the same transaction (and its deletion recorded).
"""

from __future__ import annotations

import sqlite3
import time

from mlos_registry.domain import ALIAS_DELETED, ALIAS_SET, DELETED, ModelChange
from mlos_registry.errors import AliasInUse, AliasNotFound, HistoryTrimmed, ModelNotFound

SCHEMA = """
CREATE TABLE IF NOT EXISTS model_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS changes (
    revision INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    alias TEXT NOT NULL DEFAULT '',
    unix_ms INTEGER NOT NULL
);
"""


def record_change(conn: sqlite3.Connection, keep: int, kind: str, name: str, version: int, alias: str = "") -> int:
    """Appends one change (inside the caller's transaction), trims to the last `keep`; its revision."""
    cur = conn.execute(
        "INSERT INTO changes (kind, name, version, alias, unix_ms) VALUES (?, ?, ?, ?, ?)",
        (kind, name, version, alias, int(time.time() * 1000)),
    )
    revision = int(cur.lastrowid or 0)
    conn.execute("DELETE FROM changes WHERE revision <= ?", (revision - keep,))
    return revision


def current_revision(conn: sqlite3.Connection) -> int:
    """The revision of the last change ever recorded (0 = none yet)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
    return int(row[0]) if row else 0


def changes_after(conn: sqlite3.Connection, since: int, limit: int) -> list[ModelChange]:
    """Up to `limit` changes with revision > since, in order. HistoryTrimmed if some of them are no
    longer kept, or if `since` is past the latest revision (a watcher of another registry)."""
    latest = current_revision(conn)
    if since > latest:
        raise HistoryTrimmed(
            f"since_revision {since} is past this registry's latest revision {latest}; "
            "re-list the models (ListModels) and watch from the revision it returns"
        )
    oldest = conn.execute("SELECT MIN(revision) FROM changes").fetchone()[0]
    first_kept = int(oldest) if oldest is not None else latest + 1
    if since < first_kept - 1:
        raise HistoryTrimmed(
            f"since_revision {since} is older than the registry's kept history (it starts after revision "
            f"{first_kept - 1}); re-list the models (ListModels) and watch from the revision it returns"
        )
    rows = conn.execute(
        "SELECT revision, kind, name, version, alias, unix_ms FROM changes WHERE revision > ? "
        "ORDER BY revision LIMIT ?",
        (since, limit),
    ).fetchall()
    return [ModelChange(*row) for row in rows]


def aliases_by_version(conn: sqlite3.Connection, name: str) -> dict[int, tuple[str, ...]]:
    """version -> its aliases (sorted), for one model."""
    found: dict[int, list[str]] = {}
    for alias, version in conn.execute(
        "SELECT alias, version FROM model_aliases WHERE name = ? ORDER BY alias", (name,)
    ):
        found.setdefault(version, []).append(alias)
    return {v: tuple(a) for v, a in found.items()}


def resolve_alias(conn: sqlite3.Connection, name: str, alias: str) -> int:
    """The version `alias` of model `name` points to; AliasNotFound if it is not set."""
    row = conn.execute("SELECT version FROM model_aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
    if row is None:
        raise AliasNotFound(f"model {name!r} has no alias {alias!r}")
    return int(row[0])


def set_alias(conn: sqlite3.Connection, keep: int, name: str, alias: str, version: int) -> None:
    """Points the alias at `version` (creating or moving it) and records the change; ModelNotFound
    if that version does not exist. The caller holds the transaction."""
    if conn.execute("SELECT 1 FROM model_versions WHERE name = ? AND version = ?", (name, version)).fetchone() is None:
        raise ModelNotFound(f"model {name!r} has no version {version} to point alias {alias!r} at")
    conn.execute(
        "INSERT INTO model_aliases (name, alias, version) VALUES (?, ?, ?) "
        "ON CONFLICT(name, alias) DO UPDATE SET version = excluded.version",
        (name, alias, version),
    )
    record_change(conn, keep, ALIAS_SET, name, version, alias)


def delete_alias(conn: sqlite3.Connection, keep: int, name: str, alias: str) -> int:
    """Removes the alias and records it; returns the version it pointed to (AliasNotFound if unset)."""
    version = resolve_alias(conn, name, alias)
    conn.execute("DELETE FROM model_aliases WHERE name = ? AND alias = ?", (name, alias))
    record_change(conn, keep, ALIAS_DELETED, name, version, alias)
    return version


def release_versions(conn: sqlite3.Connection, keep: int, name: str, versions: list[int], force: bool) -> None:
    """Before deleting `versions` of `name`: refuses (AliasInUse, naming the aliases) if an alias
    points at one of them, unless `force`; then deletes those aliases. Records the deletions of the
    versions and aliases. The caller holds the transaction and deletes the version rows."""
    marks = ",".join("?" * len(versions))
    pointing = conn.execute(
        f"SELECT alias, version FROM model_aliases WHERE name = ? AND version IN ({marks}) ORDER BY alias",
        (name, *versions),
    ).fetchall()
    if pointing and not force:
        named = ", ".join(f"{alias!r} -> version {version}" for alias, version in pointing)
        raise AliasInUse(
            f"model {name!r}: alias {named} points at a version to delete; move or delete the alias "
            "first (SetAlias / DeleteAlias), or delete with force to delete the alias too"
        )
    for alias, _ in pointing:
        delete_alias(conn, keep, name, alias)
    for version in versions:
        record_change(conn, keep, DELETED, name, version)
