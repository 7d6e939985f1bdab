"""`mlos models add` against a real registry server: local paths, uploads, hf/ references."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from bundle_testkit import external_data_model, folder_bytes, hf_cache_repo
from registry_testkit import Serve, Served, run_mlos

from mlos_cli.add_cmd import default_name, is_local


async def test_add_a_file_by_path_then_by_upload(served: Served, dynamic_onnx: Path, capsys) -> None:
    code, out, err = await run_mlos(capsys, "models", "add", str(dynamic_onnx), "--registry", served.addr)
    digest = hashlib.sha256(dynamic_onnx.read_bytes()).hexdigest()
    assert code == 0, err
    assert out.strip() == (f"added add_dynamic version 1 (path read by the registry): format onnx, task infer, "
                           f"{dynamic_onnx.stat().st_size} bytes, sha256 {digest}")
    code, out, err = await run_mlos(capsys, "models", "add", str(dynamic_onnx), "--name", "sent", "--upload",
                                    "--registry", served.addr, "--json")
    shown = json.loads(out)
    assert code == 0 and (shown["name"], shown["version"], shown["sha256"]) == ("sent", 1, digest)


async def test_add_a_folder_with_external_data(served: Served, tmp_path: Path, capsys) -> None:
    folder = external_data_model(tmp_path / "affine-v2").parent
    code, out, err = await run_mlos(capsys, "models", "add", str(folder), "--registry", served.addr)
    assert code == 0, err
    assert out.startswith("added affine-v2 version 1 (path read by the registry): format onnx")
    assert (await served.client.get("affine-v2")).facts["bundle_files"] == "2"


async def test_add_hf_references_from_the_registry_cache_or_uploaded_from_here(
    serve: Serve, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hf" / "hub"
    commit, _ = hf_cache_repo(cache, "acme/Affine.Model", folder_bytes(external_data_model(tmp_path / "src").parent))
    s = await serve(hf_hub_cache=cache)
    code, out, err = await run_mlos(capsys, "models", "add", "hf/acme/Affine.Model@main", "--registry", s.addr)
    assert code == 0, err
    assert out.startswith("added Affine.Model version 1 (registry's Hugging Face cache): format onnx, task infer")
    # this host's cache, as HF_HUB_CACHE would set it (the client resolves the reference with --upload)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    other = await serve()  # a registry with an empty cache of its own
    code, out, err = await run_mlos(capsys, "models", "add", "hf/acme/Affine.Model", "--upload", "--registry", other.addr)
    assert code == 0, err
    assert f"(uploaded from this host's cache, {commit[:12]})" in out
    assert (await other.client.get("Affine.Model")).sha256 == (await s.client.get("Affine.Model")).sha256


async def test_add_errors_are_reported(served: Served, tmp_path: Path, capsys) -> None:
    code, _, err = await run_mlos(capsys, "models", "add", "hf/acme/none", "--registry", served.addr)
    assert code == 2 and "NOT_FOUND" in err and "not in the local Hugging Face cache" in err
    code, _, err = await run_mlos(capsys, "models", "add", str(tmp_path / "nope.onnx"), "--registry", served.addr)
    assert code == 2 and "does not exist" in err
    code, _, err = await run_mlos(capsys, "models", "add", str(tmp_path / "nope.onnx"), "--upload",
                                  "--registry", served.addr)
    assert code == 2 and "nope.onnx" in err


def test_names_and_locality() -> None:
    assert default_name("hf/org/MiniLM-L6@v1") == "MiniLM-L6"
    assert default_name("/m/resnet 50.onnx") == "resnet-50"
    assert [is_local(a) for a in ("127.0.0.1:8101", "localhost:1", "[::1]:8101", "10.0.0.2:8101", "reg:8101")] == [
        True, True, True, False, False]
