"""SQLite metadata of model versions (stdlib sqlite3, WAL, synchronous=FULL).

One connection, used only from one worker thread (a single-thread executor), so calls are
serialised and the event loop never blocks on the database. Versions are monotonic per model:
`model_counters` remembers the highest version ever issued, so a deleted version is never reused.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TypeVar

from mlos_registry import lifecycle_store as lifecycle
from mlos_registry.domain import REGISTERED, ModelChange, ModelVersion, ServingConfig, TensorSpec

log = logging.getLogger(__name__)
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_counters (
    name TEXT PRIMARY KEY,
    last_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS model_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    format TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    inputs_json TEXT NOT NULL,
    outputs_json TEXT NOT NULL,
    config_json TEXT NOT NULL,
    labels_json TEXT NOT NULL,
    created_unix_ms INTEGER NOT NULL,
    task TEXT NOT NULL DEFAULT 'infer',
    facts_json TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (name, version)
);
CREATE INDEX IF NOT EXISTS model_versions_sha256 ON model_versions (sha256);
"""
_COLUMNS = (
    "name, version, format, sha256, size_bytes, inputs_json, outputs_json, config_json, "
    "labels_json, created_unix_ms, task, facts_json"
)
# Columns added after the first release: (name, declaration) added to an older database on open.
_ADDED_COLUMNS = (
    ("task", "TEXT NOT NULL DEFAULT 'infer'"),
    ("facts_json", "TEXT NOT NULL DEFAULT '{}'"),
)


def _migrate(conn: sqlite3.Connection) -> None:
    have = {row[1] for row in conn.execute("PRAGMA table_info(model_versions)")}
    for name, declaration in _ADDED_COLUMNS:
        if name not in have:
            conn.execute(f"ALTER TABLE model_versions ADD COLUMN {name} {declaration}")
            log.info("registry database: added column model_versions.%s", name)


def _specs_json(specs: tuple[TensorSpec, ...]) -> str:
    return json.dumps([{"name": s.name, "datatype": s.datatype, "shape": list(s.shape)} for s in specs])


def _specs(text: str) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(d["name"], d["datatype"], tuple(d["shape"])) for d in json.loads(text))


def _row_to_version(row: tuple[Any, ...]) -> ModelVersion:
    name, version, fmt, sha, size, inputs, outputs, config, labels, created, task, facts = row
    return ModelVersion(
        name=name,
        version=version,
        format=fmt,
        sha256=sha,
        size_bytes=size,
        inputs=_specs(inputs),
        outputs=_specs(outputs),
        config=ServingConfig(**json.loads(config)),
        labels=json.loads(labels),
        created_unix_ms=created,
        task=task,
        facts=json.loads(facts),
    )


class MetadataStore:
    """Async facade; every method runs its SQL on the store's own thread."""

    def __init__(self, path: Path, changes_kept: int = 10_000) -> None:
        self._path = path
        self._keep = changes_kept
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="registry-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError("metadata store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, conn)

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsynced at every commit, so a version whose registration returned
            # OK survives power loss too (NORMAL would keep it only across a process crash).
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.executescript(_SCHEMA)
            conn.executescript(lifecycle.SCHEMA)
            _migrate(conn)
            return conn

        self._conn = await asyncio.get_running_loop().run_in_executor(self._executor, connect)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)

    async def add_version(self, draft: ModelVersion) -> tuple[ModelVersion, bool]:
        """Inserts `draft` as the next version of its model, unless a version with the same
        sha256 exists under that name: then returns it. Returns (version, created)."""

        def tx(conn: sqlite3.Connection) -> tuple[ModelVersion, bool]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM model_versions WHERE name = ? AND sha256 = ? "
                    "ORDER BY version LIMIT 1",
                    (draft.name, draft.sha256),
                ).fetchone()
                if row is not None:
                    conn.execute("COMMIT")
                    return _row_to_version(row), False
                found = conn.execute(
                    "SELECT last_version FROM model_counters WHERE name = ?", (draft.name,)
                ).fetchone()
                version = (found[0] if found else 0) + 1
                conn.execute(
                    "INSERT INTO model_counters (name, last_version) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET last_version = excluded.last_version",
                    (draft.name, version),
                )
                conn.execute(
                    f"INSERT INTO model_versions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        draft.name,
                        version,
                        draft.format,
                        draft.sha256,
                        draft.size_bytes,
                        _specs_json(draft.inputs),
                        _specs_json(draft.outputs),
                        json.dumps(asdict(draft.config)),
                        json.dumps(draft.labels, sort_keys=True),
                        draft.created_unix_ms,
                        draft.task,
                        json.dumps(draft.facts, sort_keys=True),
                    ),
                )
                lifecycle.record_change(conn, self._keep, REGISTERED, draft.name, version)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return replace(draft, version=version), True

        return await self._run(tx)

    async def list(self, name: str = "") -> builtins.list[ModelVersion]:
        """Versions of `name`, or of every model when name is empty, with their aliases."""
        return await self._run(lambda conn: _list_rows(conn, name))

    async def get(self, name: str, version: int = 0, alias: str = "") -> ModelVersion | None:
        """The given version, the one `alias` points to (AliasNotFound if unset), or the latest one
        when neither is given; None if absent."""

        def query(conn: sqlite3.Connection) -> ModelVersion | None:
            wanted = lifecycle.resolve_alias(conn, name, alias) if alias else version
            if wanted:
                sql = f"SELECT {_COLUMNS} FROM model_versions WHERE name = ? AND version = ?"
                row = conn.execute(sql, (name, wanted)).fetchone()
            else:
                sql = f"SELECT {_COLUMNS} FROM model_versions WHERE name = ? ORDER BY version DESC LIMIT 1"
                row = conn.execute(sql, (name,)).fetchone()
            return _with_aliases(conn, [_row_to_version(row)])[0] if row else None

        return await self._run(query)

    async def delete(self, name: str, version: int = 0, force: bool = False) -> builtins.list[ModelVersion]:
        """Deletes one version (or all when version is 0); returns what was deleted.
        The version counter is kept, so deleted versions are never issued again. AliasInUse if an
        alias points at one of them, unless `force` (then the aliases go in the same transaction)."""

        def tx(conn: sqlite3.Connection) -> builtins.list[ModelVersion]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                where, args = ("name = ? AND version = ?", (name, version)) if version else ("name = ?", (name,))
                rows = conn.execute(f"SELECT {_COLUMNS} FROM model_versions WHERE {where}", args).fetchall()
                if rows:
                    lifecycle.release_versions(conn, self._keep, name, [r[1] for r in rows], force)
                conn.execute(f"DELETE FROM model_versions WHERE {where}", args)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return [_row_to_version(r) for r in rows]

        return await self._run(tx)

    async def digest_in_use(self, sha256: str) -> bool:
        def query(conn: sqlite3.Connection) -> bool:
            return conn.execute("SELECT 1 FROM model_versions WHERE sha256 = ? LIMIT 1", (sha256,)).fetchone() is not None

        return await self._run(query)

    # --- aliases and the change history (SQL in lifecycle_store.py) ---------------------------

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `fn` in one IMMEDIATE transaction on the store thread (rolled back if it raises)."""

        def tx(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return result

        return await self._run(tx)

    async def set_alias(self, name: str, alias: str, version: int) -> None:
        await self._write(lambda conn: lifecycle.set_alias(conn, self._keep, name, alias, version))

    async def delete_alias(self, name: str, alias: str) -> int:
        return await self._write(lambda conn: lifecycle.delete_alias(conn, self._keep, name, alias))

    async def listing(self, name: str = "") -> tuple[builtins.list[ModelVersion], int]:
        """As `list`, with the revision it reflects (read together on the store thread)."""
        return await self._run(lambda conn: (_list_rows(conn, name), lifecycle.current_revision(conn)))

    async def changes_after(self, since: int, limit: int = 500) -> builtins.list[ModelChange]:
        return await self._run(lambda conn: lifecycle.changes_after(conn, since, limit))


def _with_aliases(conn: sqlite3.Connection, versions: list[ModelVersion]) -> list[ModelVersion]:
    by_name: dict[str, dict[int, tuple[str, ...]]] = {}
    for name in {v.name for v in versions}:
        by_name[name] = lifecycle.aliases_by_version(conn, name)
    return [replace(v, aliases=by_name[v.name].get(v.version, ())) for v in versions]


def _list_rows(conn: sqlite3.Connection, name: str) -> list[ModelVersion]:
    if name:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM model_versions WHERE name = ? ORDER BY version", (name,)).fetchall()
    else:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM model_versions ORDER BY name, version").fetchall()
    return _with_aliases(conn, [_row_to_version(r) for r in rows])
