"""`mlos models add <path | hf/org/name[@rev]> [--name N] [--registry ADDR] [--upload]`.

How the bytes reach the registry:
- a path, registry on this host (a loopback address): the registry reads the path itself
  (RegisterModel with the absolute path; no copy over gRPC);
- a path, registry elsewhere, or `--upload`: the file or folder is sent (UploadModel; a folder
  as a tar of its files), so the registry needs no access to it;
- `hf/org/name[@rev]`: resolved in the registry's own Hugging Face cache (MLOS_REGISTRY_HF_HUB_CACHE,
  else HF_HUB_CACHE / HF_HOME there); with `--upload`, resolved in this host's cache and sent.
Nothing is downloaded from the Hub. Prints the version, format, task, size and sha256 (`--json`:
the whole version). The model is registered, not loaded: the first request (or
`mlos models register`) loads it.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
from dataclasses import asdict
from pathlib import Path

from mlos_registry import hf_cache
from mlos_registry.domain import ModelVersion

REGISTRY = "127.0.0.1:8101"


def add_parsers(msub: argparse._SubParsersAction) -> None:
    add = msub.add_parser("add", help="register a model file or folder, or hf/org/name[@rev] from the local HF cache")
    add.add_argument("source", help="a model file or folder, or hf/org/name[@revision]")
    add.add_argument("--name", default="", help="model name (default: from the file, folder or repository name)")
    add.add_argument("--registry", default=REGISTRY)
    add.add_argument("--upload", action="store_true",
                     help="send the bytes (UploadModel) even to a registry on this host; hf/ resolves here then")
    add.add_argument("--json", action="store_true", help="print the registered version as one JSON object")


def is_local(addr: str) -> bool:
    """Whether a registry address is on this host (then it can read our paths)."""
    if addr.startswith("unix:"):
        return True
    host = addr.rsplit(":", 1)[0].strip("[]") if ":" in addr else addr
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_name(source: str) -> str:
    """'hf/org/MiniLM-L6@v1' -> 'MiniLM-L6'; '/m/resnet50.onnx' -> 'resnet50'; a folder -> its name."""
    if hf_cache.is_reference(source):
        base = source.split("@", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    else:
        path = Path(source)
        base = path.name if path.is_dir() else path.stem
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", base).lstrip(".-").replace("..", ".")
    return cleaned[:128] or "model"


def summary(mv: ModelVersion, via: str) -> str:
    return (f"added {mv.name} version {mv.version} ({via}): format {mv.format}, task {mv.task}, "
            f"{mv.size_bytes} bytes, sha256 {mv.sha256}")


async def models_add(args: argparse.Namespace) -> int:
    from mlos_registry.client import RegistryClient

    name = args.name or default_name(args.source)
    upload = args.upload or not is_local(args.registry)
    async with RegistryClient(args.registry, timeout_s=None) as registry:
        if hf_cache.is_reference(args.source) and not upload:
            mv, via = await registry.register(name, args.source), "registry's Hugging Face cache"
        elif hf_cache.is_reference(args.source):
            snapshot = hf_cache.resolve(args.source, hf_cache.default_cache_dir())
            mv, via = await registry.upload(name, snapshot.folder), f"uploaded from this host's cache, {snapshot.commit[:12]}"
        elif upload:
            mv, via = await registry.upload(name, Path(args.source)), "uploaded"
        else:
            mv, via = await registry.register(name, str(Path(args.source).expanduser().resolve())), "path read by the registry"
    print(json.dumps(asdict(mv)) if args.json else summary(mv, via))
    return 0
