"""Start-up reconcile of the metadata rows against the blob store (blocking parts in threads).

Contract, run by `Registry.open` before the server takes requests:
- a row whose blob is missing, or whose blob's size (and, with `rehash`, sha256) is wrong, is
  logged and REMOVED, with any alias pointing at it and a change record for WatchModels (its
  version number is never issued again; re-registering the bytes makes a new version). A damaged
  blob is removed with its rows. A row that can never be served would otherwise make every
  consumer handle a broken version.
- a blob no row refers to (a crash between the blob's rename and the row's commit, or between a
  delete's row removal and its unlink) is removed.
- temp files older than this run (a crash mid-copy) are removed.
Registration writes the blob before its row and deletion removes the row before its blob, so a
healthy crash only ever leaves orphans and temp files; missing or damaged blobs mean outside
damage (disk, operator), and are logged at WARNING with the model, version and reason.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from mlos_registry.artifacts import BlobStore
from mlos_registry.store import MetadataStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What one start-up reconcile found and removed."""

    rows_checked: int = 0
    rows_removed: int = 0
    blobs_damaged: int = 0
    orphan_blobs_removed: int = 0
    temp_files_removed: int = 0

    def summary(self) -> str:
        return (
            f"reconcile: {self.rows_checked} rows checked, {self.rows_removed} rows removed "
            f"(missing or damaged blob), {self.blobs_damaged} damaged blobs removed, "
            f"{self.orphan_blobs_removed} orphan blobs removed, {self.temp_files_removed} temp files removed"
        )


async def reconcile(store: MetadataStore, blobs: BlobStore, run_started_ns: int, rehash: bool) -> ReconcileReport:
    """Brings rows and blobs back in line (see the module docstring); returns the counts."""
    temps = await asyncio.to_thread(blobs.remove_temps, run_started_ns)
    versions = await store.list()
    by_digest: dict[str, list[tuple[str, int, int]]] = {}
    for v in versions:
        by_digest.setdefault(v.sha256, []).append((v.name, v.version, v.size_bytes))
    rows_removed = damaged = 0
    for digest, rows in by_digest.items():
        reason = await asyncio.to_thread(blobs.check, digest, rows[0][2], rehash)
        if reason is None:
            continue
        for name, version, _ in rows:
            log.warning("reconcile: removing %s version %d: %s (sha256 %s)", name, version, reason, digest[:12])
            rows_removed += len(await store.delete(name, version, force=True))
        if await asyncio.to_thread(blobs.exists, digest):
            damaged += 1
            await asyncio.to_thread(blobs.delete, digest)
    orphans = [d for d in await asyncio.to_thread(blobs.digests) if d not in by_digest]
    for digest in orphans:
        log.info("reconcile: removing orphan blob %s (no version refers to it)", digest[:12])
        await asyncio.to_thread(blobs.delete, digest)
    report = ReconcileReport(len(versions), rows_removed, damaged, len(orphans), temps)
    log.log(logging.WARNING if rows_removed or damaged else logging.INFO, "%s", report.summary())
    return report
