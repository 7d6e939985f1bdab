"""`hf/org/name[@rev]` references resolved in a local Hugging Face cache the test writes with
huggingface_hub's own cache-writing code, through a real registry server (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bundle_testkit import external_data_model, folder_bytes, hf_cache_repo
from huggingface_hub import scan_cache_dir
from registry_testkit import Serve, add_model

from mlos_common.errors import InvalidArgument, NotFound


@pytest.fixture
def hf_cache(tmp_path: Path) -> Path:
    return tmp_path / "hf" / "hub"


async def test_hf_reference_with_external_data_registers_its_snapshot(serve: Serve, hf_cache: Path, tmp_path: Path):
    files = folder_bytes(external_data_model(tmp_path / "src").parent)
    files["README.md"] = b"# a model card the bundle leaves out"
    commit, snapshot = hf_cache_repo(hf_cache, "acme/affine", files)
    # huggingface_hub itself reads the cache we wrote as one of its own
    [repo] = scan_cache_dir(hf_cache).repos
    assert repo.repo_id == "acme/affine" and {r.commit_hash for r in repo.revisions} == {commit}
    assert (snapshot / "model.onnx").is_symlink()  # into ../../blobs, outside the snapshot folder

    s = await serve(hf_hub_cache=hf_cache)
    mv = await s.client.register("affine", "hf/acme/affine")
    assert mv.format == "onnx" and mv.facts == {"bundle_files": "2", "model_file": "model.onnx"}
    assert [(t.name, t.shape) for t in mv.inputs] == [("X", (-1, 16))]
    # the same files at the same paths: the same digest as registering the source folder
    assert (await s.client.register("affine", tmp_path / "src")).version == mv.version
    for ref in ("hf/acme/affine@main", f"hf/acme/affine@{commit}"):
        assert (await s.client.register("affine", ref)).sha256 == mv.sha256
    assert (s.core.metrics.count("hf", "bundle"), s.core.metrics.count("path", "bundle")) == (3, 1)


async def test_hf_reference_to_a_one_file_model_and_a_tag(serve: Serve, hf_cache: Path) -> None:
    hf_cache_repo(hf_cache, "acme/adder", {"model.onnx": add_model("N").SerializeToString()}, revision="v1.0")
    s = await serve(hf_hub_cache=hf_cache)
    mv = await s.client.register("adder", "hf/acme/adder@v1.0")
    assert mv.facts == {} and [t.name for t in mv.outputs] == ["z"]  # a single file stays a plain file


async def test_missing_repository_or_revision_names_the_cache_searched(serve: Serve, hf_cache: Path) -> None:
    hf_cache_repo(hf_cache, "acme/adder", {"model.onnx": add_model("N").SerializeToString()})
    s = await serve(hf_hub_cache=hf_cache)
    with pytest.raises(NotFound, match=r"acme/missing at revision 'main' is not in the local Hugging Face cache "
                                       rf"\(searched {hf_cache}/models--acme--missing"):
        await s.client.register("m", "hf/acme/missing")
    with pytest.raises(NotFound, match="revision 'v9' is not in the local Hugging Face cache"):
        await s.client.register("m", "hf/acme/adder@v9")


@pytest.mark.parametrize("ref", ["hf/acme", "hf/../etc/passwd", "hf/acme/x/y", "hf/acme/..", "hf/acme/a@../../x",
                                 "hf/acme/a@/abs", "hf/-x/y", "hf/acme/a@" + "r" * 300])
async def test_malformed_references_are_invalid_argument(serve: Serve, hf_cache: Path, ref: str) -> None:
    s = await serve(hf_hub_cache=hf_cache)
    with pytest.raises(InvalidArgument, match="Hugging Face reference|revision"):
        await s.client.register("m", ref)


async def test_a_refs_file_pointing_outside_the_snapshots_is_refused(serve: Serve, hf_cache: Path) -> None:
    _, snapshot = hf_cache_repo(hf_cache, "acme/adder", {"model.onnx": add_model("N").SerializeToString()})
    (snapshot.parent.parent / "refs" / "evil").write_text("../../../../..")  # a hostile cache entry
    s = await serve(hf_hub_cache=hf_cache)
    with pytest.raises(InvalidArgument, match="point outside"):
        await s.client.register("m", "hf/acme/adder@evil")


async def test_a_snapshot_without_a_model_says_what_it_holds(serve: Serve, hf_cache: Path) -> None:
    hf_cache_repo(hf_cache, "acme/card", {"README.md": b"nothing to serve"})
    s = await serve(hf_hub_cache=hf_cache)
    with pytest.raises(InvalidArgument, match="holds no model we can register.*README.md"):
        await s.client.register("m", "hf/acme/card")
