"""ONNX models with external data: registered as one bundle artifact, fetched, unpacked, run by
ONNX Runtime; hostile external-data locations refused; reconcile handles bundle blobs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from bundle_testkit import external_data_model, ort_outputs, point_external_data
from registry_testkit import Serve, Served

from mlos_common.bundle import MANIFEST, BundleError, extract_bundle
from mlos_common.errors import InvalidArgument, NotFound


async def test_folder_and_its_model_file_register_the_same_bundle(served: Served, tmp_path: Path) -> None:
    model_file = external_data_model(tmp_path / "affine")
    (model_file.parent / "notes.txt").write_text("left out of the bundle")
    mv = await served.client.register("affine", model_file.parent)
    assert mv.format == "onnx" and mv.task == "infer"
    assert mv.facts == {"bundle_files": "2", "model_file": "model.onnx"}
    assert mv.config.max_batch_size == 8  # batchable: the usual default
    again = await served.client.register("affine", model_file)  # the .onnx inside: same bundle
    assert (again.version, again.sha256) == (mv.version, mv.sha256)

    fetched, digest = await served.client.fetch_artifact("affine", mv.version, tmp_path / "fetched.tar")
    assert digest == mv.sha256 and fetched.stat().st_size == mv.size_bytes
    unpacked = extract_bundle(fetched, tmp_path / "unpacked")
    assert sorted(p.name for p in unpacked.parent.iterdir()) == [MANIFEST, "model.onnx", "weights.bin"]
    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    np.testing.assert_array_equal(ort_outputs(unpacked, x), ort_outputs(model_file, x))


async def test_the_digest_depends_on_paths_and_bytes_only(served: Served, tmp_path: Path) -> None:
    first = external_data_model(tmp_path / "one")
    second = external_data_model(tmp_path / "two")
    os.utime(second.parent / "weights.bin", (1, 1))  # other timestamps, same bytes
    a = await served.client.register("a", first.parent)
    b = await served.client.register("b", second.parent)
    assert a.sha256 == b.sha256
    other = await served.client.register("c", external_data_model(tmp_path / "three", seed=7).parent)
    assert other.sha256 != a.sha256


def _hostile(tmp_path: Path, location: str) -> Path:
    model_file = external_data_model(tmp_path / "hostile")
    point_external_data(model_file, location)
    return model_file


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("../outside.bin", "a path with '..'"),
        ("sub/../../outside.bin", "a path with '..'"),
        ("/etc/hostname", "an absolute path"),
        ("missing.bin", "a file that does not exist"),
    ],
)
async def test_hostile_locations_are_refused_naming_tensor_and_location(
    served: Served, tmp_path: Path, location: str, why: str
) -> None:
    (tmp_path / "outside.bin").write_bytes(b"\0" * 4096)
    model_file = _hostile(tmp_path, location)
    with pytest.raises(InvalidArgument, match=rf"tensor 'W' keeps its data at external location '{location}'.*{why}"):
        await served.client.register("h", model_file.parent)
    with pytest.raises(InvalidArgument, match="tensor 'W'"):
        await served.client.register("h", model_file)
    assert await served.client.list() == []


async def test_symlinks_escaping_the_folder_or_into_proc_are_refused(served: Served, tmp_path: Path) -> None:
    model_file = _hostile(tmp_path, "link.bin")
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4096)
    link = model_file.parent / "link.bin"
    link.symlink_to(tmp_path / "secret.bin")
    with pytest.raises(InvalidArgument, match=r"'link.bin'.*resolves \(through a symlink\) outside the model's folder"):
        await served.client.register("h", model_file)
    with pytest.raises(InvalidArgument, match="'link.bin' is a link leading outside"):
        await served.client.register("h", model_file.parent)  # the folder's scan sees it first
    link.unlink()
    link.symlink_to("/proc/self/environ")
    with pytest.raises(InvalidArgument, match=r"'link.bin'.*resolves under /proc"):
        await served.client.register("h", model_file)
    link.unlink()
    (model_file.parent / "sub").symlink_to(tmp_path)  # a symlinked folder leading out
    point_external_data(model_file, "sub/secret.bin")
    with pytest.raises(InvalidArgument, match="'sub/secret.bin'.*outside the model's folder"):
        await served.client.register("h", model_file)


async def test_a_symlinked_data_file_inside_the_folder_is_refused_by_onnx_rules(served: Served, tmp_path: Path):
    model_file = external_data_model(tmp_path / "m")
    folder = model_file.parent
    (folder / "weights.bin").rename(folder / "real.bin")
    (folder / "weights.bin").symlink_to("real.bin")  # inside, but onnx.load refuses symlinked data
    with pytest.raises(InvalidArgument, match="tensor 'W'.*weights.bin"):
        await served.client.register("h", folder)


async def test_over_the_size_limit_counts_the_external_data(serve: Serve, tmp_path: Path) -> None:
    model_file = external_data_model(tmp_path / "m", side=64)
    s = await serve(max_artifact_bytes=(model_file.parent / "weights.bin").stat().st_size)
    from mlos_common.errors import ResourceExhausted

    with pytest.raises(ResourceExhausted, match="MAX_ARTIFACT_BYTES"):
        await s.client.register("big", model_file.parent)


async def test_reconcile_removes_a_bundle_whose_blob_is_damaged_or_missing(serve: Serve, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    s = await serve(data_dir=data_dir)
    damaged = await s.client.register("damaged", external_data_model(tmp_path / "a").parent)
    missing = await s.client.register("missing", external_data_model(tmp_path / "b", seed=3).parent)
    kept = await s.client.register("kept", external_data_model(tmp_path / "c", seed=4).parent)
    await s.stop()
    blob = data_dir / "blobs" / "sha256" / damaged.sha256[:2] / damaged.sha256
    raw = bytearray(blob.read_bytes())
    raw[-2000] ^= 0xFF  # a flipped bit inside weights.bin
    blob.write_bytes(bytes(raw))
    (data_dir / "blobs" / "sha256" / missing.sha256[:2] / missing.sha256).unlink()

    s = await serve(data_dir=data_dir)
    assert s.core.reconciled.rows_removed == 2 and s.core.reconciled.blobs_damaged == 1
    assert [v.name for v in await s.client.list()] == ["kept"]
    with pytest.raises(NotFound):
        await s.client.get("damaged")
    assert (await s.client.get("kept")).sha256 == kept.sha256


@pytest.mark.parametrize("entry", ["../escape.bin", "/abs.bin", "a\\b"])
def test_extract_refuses_unsafe_entries(tmp_path: Path, entry: str) -> None:
    import io
    import tarfile

    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        for name in (MANIFEST, entry):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
    with pytest.raises(BundleError, match="entry"):
        extract_bundle(archive, tmp_path / "out")
    assert not (tmp_path / "escape.bin").exists() and not Path("/abs.bin").exists()


@pytest.mark.parametrize("target", ["/proc/self/environ", "../elsewhere/model.onnx"])
async def test_a_folder_entry_linking_outside_is_never_opened(served: Served, tmp_path: Path, target: str) -> None:
    from registry_testkit import add_model, save

    save(add_model("N"), tmp_path / "elsewhere" / "model.onnx")
    folder = tmp_path / "linked"
    folder.mkdir()
    (folder / "model.onnx").symlink_to(target)
    with pytest.raises(InvalidArgument, match="'model.onnx' is a link leading outside the model's folder"):
        await served.client.register("m", folder)
