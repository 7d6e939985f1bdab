"""Start-up reconcile: rows without a good blob are removed, orphan blobs and old temp files too."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

import pytest
from registry_testkit import add_model, identity_model, save

from mlos_registry.config import RegistrySettings
from mlos_registry.core import Registry
from mlos_registry.reconcile import ReconcileReport


async def _damaged_store(tmp_path: Path) -> RegistrySettings:
    """A store with m (blob deleted), n (blob bit-flipped, same size), p (intact), an orphan blob
    and a temp file left by an earlier run."""
    settings = RegistrySettings(grpc_port=0, metrics_port=-1, data_dir=tmp_path / "data")
    core = await Registry.open(settings)
    files = [save(add_model("N"), tmp_path / "m.onnx"), save(add_model(2), tmp_path / "n.onnx"),
             save(identity_model([1, 4]), tmp_path / "p.onnx")]
    blobs = []
    for name, path in zip("mnp", files, strict=True):
        await core.register(name, str(path))
        blobs.append(Path((await core.open_artifact(name))[0]))
    await core.set_alias("m", "prod", 1)  # an alias does not keep a broken version alive
    await core.close()
    blobs[0].unlink()
    flipped = bytearray(blobs[1].read_bytes())
    flipped[len(flipped) // 2] ^= 0x01
    blobs[1].write_bytes(bytes(flipped))
    orphan = b"bytes no version refers to"
    digest = hashlib.sha256(orphan).hexdigest()
    (settings.data_dir / "blobs" / "sha256" / digest[:2]).mkdir(exist_ok=True)
    (settings.data_dir / "blobs" / "sha256" / digest[:2] / digest).write_bytes(orphan)
    leftover = settings.data_dir / "blobs" / "tmp" / "stage-crashed"
    leftover.write_bytes(b"half a model")
    past_ns = time.time_ns() - 3600 * 10**9
    os.utime(leftover, ns=(past_ns, past_ns))
    return settings


async def test_reconcile_removes_broken_rows_orphans_and_temps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = await _damaged_store(tmp_path)
    with caplog.at_level(logging.INFO, logger="mlos_registry.reconcile"):
        core = await Registry.open(settings)
    try:
        assert core.reconciled == ReconcileReport(
            rows_checked=3, rows_removed=2, blobs_damaged=1, orphan_blobs_removed=1, temp_files_removed=1
        )
        assert [v.name for v in await core.list()] == ["p"]
        assert "removing m version 1: its blob is missing" in caplog.text
        assert "removing n version 1: its blob's sha256 does not match" in caplog.text
        assert "reconcile: 3 rows checked, 2 rows removed" in caplog.text
        blob_files = [p for p in (settings.data_dir / "blobs" / "sha256").rglob("*") if p.is_file()]
        assert len(blob_files) == 1 and list((settings.data_dir / "blobs" / "tmp").iterdir()) == []
        again = await core.register("m", str(tmp_path / "m.onnx"))
        assert again.version == 2  # a removed version's number is never issued again
    finally:
        await core.close()
    reopened = await Registry.open(settings)  # a clean store reconciles to nothing
    assert reopened.reconciled == ReconcileReport(rows_checked=2)
    await reopened.close()


async def test_without_rehash_only_presence_and_size_are_checked(tmp_path: Path) -> None:
    settings = await _damaged_store(tmp_path)
    core = await Registry.open(settings.model_copy(update={"verify_blobs_on_start": False}))
    try:
        assert core.reconciled.rows_removed == 1 and core.reconciled.blobs_damaged == 0
        assert [v.name for v in await core.list()] == ["n", "p"]  # n's flipped bit is caught on fetch
    finally:
        await core.close()
