"""Store, blob store, format detection and ONNX inspection without gRPC."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
import zipfile
from pathlib import Path

import pytest
from onnx import helper
from registry_testkit import add_model, identity_model, save

from mlos_registry import bundle, formats, signature
from mlos_registry.artifacts import BlobStore
from mlos_registry.config import RegistrySettings
from mlos_registry.core import Registry, validate_name
from mlos_registry.domain import ModelVersion, ServingConfig, TensorSpec
from mlos_registry.errors import ArtifactCorrupt, ArtifactTooLarge, InvalidModelFile, UnsupportedFormat
from mlos_registry.store import MetadataStore


def _draft(name: str, sha: str) -> ModelVersion:
    return ModelVersion(
        name=name, version=0, format="onnx", sha256=sha, size_bytes=10,
        inputs=(TensorSpec("x", "FP32", (-1, 3)),), outputs=(TensorSpec("y", "INT64", (-1,)),),
        config=ServingConfig(max_batch_size=8, instance_count=1, device="auto"),
        labels={"k": "v"}, created_unix_ms=123,
    )


async def test_store_versions_idempotency_and_persistence(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite3"
    store = MetadataStore(db)
    await store.open()
    v1, created = await store.add_version(_draft("m", "a" * 64))
    assert (v1.version, created) == (1, True)
    same, created = await store.add_version(_draft("m", "a" * 64))
    assert (same, created) == (v1, False)
    v2, _ = await store.add_version(_draft("m", "b" * 64))
    assert v2.version == 2 and await store.get("m") == v2 and await store.get("m", 1) == v1
    assert [v.version for v in await store.delete("m", 2)] == [2]
    assert await store.digest_in_use("a" * 64) and not await store.digest_in_use("b" * 64)
    await store.close()

    reopened = MetadataStore(db)  # survives a restart, and the counter too
    await reopened.open()
    assert await reopened.list("m") == [v1]
    v3, _ = await reopened.add_version(_draft("m", "c" * 64))
    assert v3.version == 3
    assert (await reopened.get("m", 3)).labels == {"k": "v"}
    assert await reopened.get("absent") is None
    await reopened.close()


async def test_blob_store_stage_commit_and_verified_read(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    blobs.prepare()
    old, young = tmp_path / "blobs" / "tmp" / "stage-leftover", tmp_path / "blobs" / "tmp" / "stage-live"
    old.write_bytes(b"half")
    young.write_bytes(b"being written")
    run_started_ns = time.time_ns() - 60 * 10**9
    os.utime(old, ns=(run_started_ns - 10**9, run_started_ns - 10**9))  # an earlier run's leftover
    assert blobs.remove_temps(run_started_ns) == 1
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == [young]  # a live staging is left alone
    young.unlink()

    src = tmp_path / "src.bin"
    src.write_bytes(bytes(range(256)) * 1000)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    staged = blobs.stage(src, max_bytes=1 << 20, shown_as="'src.bin'")
    assert (staged.sha256, staged.size_bytes) == (digest, 256_000)
    assert not blobs.exists(digest)  # invisible until committed
    final = blobs.commit(staged)
    assert final == tmp_path / "blobs" / "sha256" / digest[:2] / digest
    assert final.read_bytes() == src.read_bytes()

    chunks = [c async for c in blobs.read_verified(digest, 256_000, 100_000, "m")]
    assert [c.offset for c in chunks] == [0, 100_000, 200_000] and [c.last for c in chunks] == [False, False, True]
    assert b"".join(c.data for c in chunks) == src.read_bytes()

    data = bytearray(final.read_bytes())
    data[-1] ^= 1
    final.write_bytes(bytes(data))
    with pytest.raises(ArtifactCorrupt):
        async for chunk in blobs.read_verified(digest, 256_000, 100_000, "m"):
            assert not chunk.last  # the last chunk is never sent for a bad blob

    with pytest.raises(ArtifactTooLarge):
        blobs.stage(src, max_bytes=1000, shown_as="'src.bin'")
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    with pytest.raises(ValueError):
        blobs.path("../../etc/passwd")


def test_sniff_by_content(tmp_path: Path) -> None:
    def write(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    assert formats.sniff(write("a.onnx", b"GGUF\x03\x00\x00\x00")) == "gguf"
    assert formats.sniff(write("b.bin", struct.pack("<Q", len(header)) + header + b"\x00" * 4)) == "safetensors"
    assert formats.sniff(write("c.bin", b"\x80\x04\x95" + b"\x00" * 20)) == "pickle"
    with zipfile.ZipFile(tmp_path / "d.pt", "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02.")
    assert formats.sniff(tmp_path / "d.pt") == "pytorch"
    with zipfile.ZipFile(tmp_path / "e.zip", "w") as zf:
        zf.writestr("readme.txt", b"hi")
    assert formats.sniff(tmp_path / "e.zip") == "zip"
    assert formats.sniff(save(add_model(), tmp_path / "model.gguf")) is None  # ONNX has no magic
    with pytest.raises(UnsupportedFormat, match="SafeTensors.*not available yet"):
        formats.reject_unregistrable("safetensors", "'b.bin'")


def test_signature_and_defaults(tmp_path: Path) -> None:
    dynamic = signature.inspect_onnx(save(add_model("N"), tmp_path / "d.onnx"), "'d.onnx'")
    assert dynamic.inputs[0] == TensorSpec("x", "FP32", (-1, 3))
    assert signature.default_config(dynamic, 8) == ServingConfig(max_batch_size=8, instance_count=1, device="auto")
    fixed = signature.inspect_onnx(save(add_model(2), tmp_path / "f.onnx"), "'f.onnx'")
    assert signature.default_config(fixed, 8).max_batch_size == 0
    scalar = signature.inspect_onnx(save(identity_model([]), tmp_path / "s.onnx"), "'s.onnx'")
    assert scalar.inputs == (TensorSpec("a", "INT64", ()),) and not signature.batchable(scalar)

    custom = add_model("N")
    custom.graph.node[0].domain = "evil.ops"
    custom.opset_import.append(helper.make_opsetid("evil.ops", 1))
    with pytest.raises(UnsupportedFormat, match="evil.ops"):
        signature.inspect_onnx(save(custom, tmp_path / "c.onnx"), "'c.onnx'")
    data = add_model().SerializeToString()
    truncated = tmp_path / "trunc.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidModelFile, match="does not parse as an ONNX model"):
        signature.load_model(truncated, "'trunc.onnx'")


@pytest.mark.parametrize("location", ["../secret", "/etc/passwd", "a/../../b", "C:\\x"])
def test_unsafe_external_locations(tmp_path: Path, location: str) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\0" * 8)
    assert bundle._our_refusal(tmp_path, tmp_path, location)
    assert bundle._our_refusal(tmp_path, tmp_path, "weights.bin") is None


@pytest.mark.parametrize("name", ["resnet50", "a", "bert.base-v1_2", "A" * 128])
def test_good_names(name: str) -> None:
    assert validate_name(name) == name


async def test_registry_core_without_grpc(tmp_path: Path) -> None:
    core = await Registry.open(RegistrySettings(data_dir=tmp_path / "data"))
    try:
        mv = await core.register("m", str(save(add_model(), tmp_path / "m.onnx")))
        path, sha, size = await core.open_artifact("m", 0)
        assert Path(path).is_relative_to(tmp_path / "data") and sha == mv.sha256 and size == mv.size_bytes
        assert await core.delete("m") == 1
        assert not Path(path).exists()  # unreferenced blob removed
    finally:
        await core.close()
