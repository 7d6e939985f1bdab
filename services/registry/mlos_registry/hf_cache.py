"""`hf/org/name[@revision]` references, resolved in the local Hugging Face cache, never online.

The cache is the layout huggingface_hub writes (HF_HUB_CACHE, default $HF_HOME/hub):
`models--org--name/refs/<revision>` holds a commit hash, `snapshots/<commit>/...` holds the
files as symlinks into `blobs/`. Resolution is huggingface_hub's own
`snapshot_download(..., local_files_only=True)`, which opens no connection. We check the
reference first (repo id rules, a revision without `..`), and that the folder it gives lies in
the repository's cache folder (a hostile refs file cannot point elsewhere). A missing repository
or revision is NotFound naming the cache folder searched. No grpc here; blocking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mlos_common.errors import InvalidArgument, NotFound

PREFIX = "hf/"
DEFAULT_REVISION = "main"
# huggingface_hub's repo id rules (validate_repo_id), as org/name: both parts required here.
_REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_REVISION = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class HfReferenceNotFound(NotFound):
    """The repository or revision is not in the local Hugging Face cache."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A resolved reference: the snapshot folder and the repository's cache folder it lives in."""

    repo_id: str
    revision: str
    commit: str
    folder: Path  # snapshots/<commit>
    repo_root: Path  # models--org--name (the snapshot's files are symlinks into its blobs/)


def is_reference(text: str) -> bool:
    return text.startswith(PREFIX)


def parse(text: str) -> tuple[str, str]:
    """'hf/org/name@rev' -> ('org/name', 'rev'); InvalidArgument naming what is wrong."""
    body = text[len(PREFIX) :]
    repo_id, _, revision = body.partition("@")
    revision = revision or DEFAULT_REVISION
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_REPO_PART.match(p) and ".." not in p and not p.endswith(".") for p in parts):
        raise InvalidArgument(
            f"path {text[:200]!r}: a Hugging Face reference is hf/<org>/<name>[@<revision>], with org and name "
            "of letters, digits, '_', '.', '-' (not starting with '.' or '-', no '..')"
        )
    if len(revision) > 255 or not _REVISION.match(revision) or ".." in revision.split("/"):
        raise InvalidArgument(
            f"path {text[:200]!r}: revision {revision[:100]!r} is not a branch, tag or commit name "
            "(letters, digits, '_', '.', '-', '/' between parts, no '..')"
        )
    return repo_id, revision


def default_cache_dir() -> Path:
    """huggingface_hub's cache folder: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def resolve(text: str, cache_dir: Path) -> Snapshot:
    """The snapshot folder `text` names in `cache_dir` (offline)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    from huggingface_hub.file_download import repo_folder_name

    repo_id, revision = parse(text)
    repo_root = (cache_dir / repo_folder_name(repo_id=repo_id, repo_type="model")).resolve()
    try:
        found = snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True)
    except (LocalEntryNotFoundError, OSError, ValueError) as exc:  # ValueError: the library's id checks
        raise HfReferenceNotFound(
            f"{text[:200]!r}: {repo_id} at revision {revision!r} is not in the local Hugging Face cache "
            f"(searched {repo_root}; the registry never downloads: fetch it there first, e.g. "
            f"`hf download {repo_id} --revision {revision}`, or set HF_HUB_CACHE) ({type(exc).__name__})"
        ) from None
    folder = Path(str(found)).resolve()
    if not folder.is_relative_to(repo_root / "snapshots") or not folder.is_dir():
        raise InvalidArgument(
            f"{text[:200]!r}: the cache's refs for {revision!r} point outside {repo_root / 'snapshots'}; refusing it"
        )
    return Snapshot(repo_id, revision, folder.name, folder, repo_root)
