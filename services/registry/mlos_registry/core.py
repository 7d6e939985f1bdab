"""The registry's domain logic, free of grpc: register, list, get, delete, open artifacts."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from mlos_common.bundle import write_bundle
from mlos_common.errors import InvalidArgument
from mlos_registry import bundle, formats, gguf_model, hf_cache, signature, sources, upload
from mlos_registry.artifacts import BlobStore, Chunk, StagedBlob
from mlos_registry.config import RegistrySettings
from mlos_registry.conversion import Converted, Converter
from mlos_registry.domain import DEVICES, INFER, LATEST, ModelChange, ModelVersion, ServingConfig
from mlos_registry.errors import (
    ArtifactCorrupt,
    InvalidModelFile,
    InvalidModelName,
    InvalidPath,
    ModelNotFound,
)
from mlos_registry.lifecycle import ChangeFeed, check_version_or_alias, validate_alias
from mlos_registry.metrics import RegistryMetrics
from mlos_registry.reconcile import ReconcileReport, reconcile
from mlos_registry.store import MetadataStore

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MAX_LABELS = 64
MAX_LABEL_KEY = 128
MAX_LABEL_VALUE = 1024


def name_ok(text: str) -> bool:
    """Whether `text` follows the model-name rules (aliases follow them too)."""
    return _NAME.match(text) is not None and ".." not in text


def _checked_alias(alias: str) -> str:
    return validate_alias(alias, name_ok(alias))


def validate_name(name: str) -> str:
    if not name_ok(name):
        shown = name if len(name) <= 64 else name[:64] + "..."
        raise InvalidModelName(
            f"invalid model name {shown!r}: use 1-128 characters of letters, digits, '_', '.', '-', "
            "not starting with '.' or '-' and without '..'"
        )
    return name


def validate_version(version: int) -> int:
    if version < 0:
        raise InvalidArgument(f"invalid version {version}: versions start at 1 (0 = latest / all)")
    return version


def _validate_labels(labels: Mapping[str, str]) -> dict[str, str]:
    if len(labels) > MAX_LABELS:
        raise InvalidArgument(f"too many labels ({len(labels)}); at most {MAX_LABELS}")
    for key, value in labels.items():
        if not key or len(key) > MAX_LABEL_KEY or len(value) > MAX_LABEL_VALUE:
            raise InvalidArgument(
                f"label {key[:32]!r}: keys need 1-{MAX_LABEL_KEY} characters, values at most {MAX_LABEL_VALUE}"
            )
    return dict(labels)


MAX_PRIORITY_LEVELS = 64


def _validate_config(config: ServingConfig, sig: signature.Signature, name: str) -> None:
    """The checks every model gets; the format's own checks come from _describe."""
    if config.max_batch_size < 0:
        raise InvalidArgument(f"max_batch_size must be >= 0, got {config.max_batch_size}")
    if config.max_batch_size > 0 and not signature.batchable(sig):
        fixed = next(s for s in (*sig.inputs, *sig.outputs) if not s.shape or s.shape[0] != -1)
        raise InvalidArgument(
            f"model {name!r} cannot batch: tensor {fixed.name!r} has shape {list(fixed.shape)} (its first "
            "dimension is not variable); leave max_batch_size at 0"
        )
    if config.priority_levels > MAX_PRIORITY_LEVELS:
        raise InvalidArgument(f"priority_levels must be at most {MAX_PRIORITY_LEVELS}, got {config.priority_levels}")
    if config.priority_levels and config.default_priority > config.priority_levels:
        raise InvalidArgument(
            f"default_priority {config.default_priority} is outside the model's {config.priority_levels} "
            "priority levels (1 = highest)"
        )
    if config.preferred_batch_sizes and not config.max_batch_size:
        raise InvalidArgument(
            f"preferred_batch_sizes {list(config.preferred_batch_sizes)} need batching; model {name!r} has "
            "max_batch_size 0"
        )
    for size in config.preferred_batch_sizes:
        if size < 1 or size > config.max_batch_size:
            raise InvalidArgument(
                f"preferred batch size {size} must be between 1 and max_batch_size {config.max_batch_size}"
            )
    _validate_warmup_plan(config, name)
    device = config.device
    if device not in DEVICES and not re.fullmatch(r"cuda:\d+", device):
        raise InvalidArgument(f"device {device!r} is not one of {', '.join(DEVICES)} or cuda:<index>")


def _validate_warmup_plan(config: ServingConfig, name: str) -> None:
    """A warm-up plan runs batches the model can take: batching on, each size 1..max_batch_size."""
    plan = list(config.warmup_batch_sizes)
    if plan and not config.max_batch_size:
        raise InvalidArgument(f"warmup_batch_sizes {plan} need batching; model {name!r} has max_batch_size 0")
    for size in plan:
        if size < 1 or size > config.max_batch_size:
            raise InvalidArgument(f"warmup batch size {size} of model {name!r} must be between 1 and max_batch_size "
                                  f"{config.max_batch_size}")


@dataclass(frozen=True, slots=True)
class _Described:
    """What registration learns from a model file, and its validated serving config."""

    format: str
    task: str
    facts: dict[str, str]
    sig: signature.Signature
    config: ServingConfig


def _describe(
    fmt: str | None, staged: Path, shown: str, request: ServingConfig | None, name: str, default_max_batch_size: int,
) -> _Described:
    """Inspects the staged copy (blocking: run in a thread) and validates the serving config for it.
    signature.HasExternalData for an ONNX file whose tensors live in other files."""
    if fmt == formats.GGUF:
        model = gguf_model.inspect_gguf(staged, shown)
        sig = signature.Signature(model.inputs, model.outputs)
        serving = gguf_model.default_config(model).overridden_by(request)
        gguf_model.validate_config(serving, model, name)
        _validate_config(serving, sig, name)
        return _Described(formats.GGUF, model.task, model.facts, sig, serving)
    sig = signature.inspect_onnx(staged, shown)
    return _onnx_described(sig, request, name, default_max_batch_size, {})


def _onnx_described(
    sig: signature.Signature, request: ServingConfig | None, name: str, default_max_batch_size: int,
    facts: dict[str, str],
) -> _Described:
    serving = signature.default_config(sig, default_max_batch_size).overridden_by(request)
    gguf_model.refuse_gguf_fields(serving, name)
    _validate_config(serving, sig, name)
    return _Described(formats.ONNX, INFER, facts, sig, serving)


class Registry:
    """Owns the metadata store and the blob store. Create with `await Registry.open(settings)`."""

    def __init__(
        self, settings: RegistrySettings, store: MetadataStore, blobs: BlobStore,
        reconciled: ReconcileReport | None = None, metrics: RegistryMetrics | None = None,
    ) -> None:
        self._settings = settings
        self.metrics = metrics or RegistryMetrics()
        self.reconciled = reconciled or ReconcileReport()  # what the start-up reconcile did
        self._store = store
        self._blobs = blobs
        self._roots = [Path(r).expanduser().resolve() for r in settings.allowed_roots]
        # Serialises "blob becomes visible + row inserted" against "rows deleted + blob removed".
        self._write_lock = asyncio.Lock()
        self._feed = ChangeFeed(store)
        self.converter = Converter(settings, settings.resolved_data_dir() / "converted", self.metrics.collector)

    @classmethod
    async def open(cls, settings: RegistrySettings, metrics: RegistryMetrics | None = None) -> Registry:
        """Opens the stores and reconciles rows with blobs (reconcile.py) before returning."""
        run_started_ns = time.time_ns()
        data_dir = settings.resolved_data_dir()
        blobs = BlobStore(data_dir / "blobs")
        await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(blobs.prepare)
        store = MetadataStore(data_dir / "registry.sqlite3", settings.changes_kept)
        await store.open()
        log.info("registry data in %s", data_dir)
        reconciled = await reconcile(store, blobs, run_started_ns, settings.verify_blobs_on_start)
        registry = cls(settings, store, blobs, reconciled, metrics)
        await asyncio.to_thread(registry.converter.prepare)
        return registry

    async def close(self) -> None:
        await self._store.close()

    async def register(
        self,
        name: str,
        path: str,
        config: ServingConfig | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Registers the model at `path`: a file, a folder (sources.folder_model picks its model; an ONNX
        model with external data becomes one bundle artifact) or `hf/org/name[@rev]` (hf_cache.py).
        Identical bytes under `name` return the existing version.
        Durable order: the blob is fsynced and renamed into place (its folder fsynced) before the row
        is committed (SQLite WAL, synchronous=FULL), so a version visible once is there after a crash."""
        validate_name(name)
        labels = _validate_labels(labels or {})
        shown = repr(path) if len(path) <= 200 else repr(path[:200]) + "..."
        if hf_cache.is_reference(path):
            snap = await asyncio.to_thread(hf_cache.resolve, path, self._settings.resolved_hf_cache_dir())
            log.info("%s resolved to commit %s in the Hugging Face cache", path, snap.commit)
            mv = await self.register_source(name, snap.folder, snap.repo_root, shown, config, labels)
            return self.metrics.registered("hf", mv)
        source = await asyncio.to_thread(sources.check_path, path, self._roots, self._settings.max_artifact_bytes)
        root = source if source.is_dir() else source.parent
        return self.metrics.registered("path", await self.register_source(name, source, root, shown, config, labels))

    async def upload(self, header: upload.UploadHeader, chunks: AsyncIterator[bytes]) -> ModelVersion:
        """UploadModel (upload.py): receive and verify the bytes, then register them as a local file
        or (header.archive) folder would be."""
        validate_name(header.name)
        labels = _validate_labels(header.labels)
        mv = await upload.register_upload(self, self._blobs, header, labels, chunks, self._settings.max_artifact_bytes)
        return self.metrics.registered("upload", mv)

    async def register_source(
        self, name: str, source: Path, root: Path, shown: str, config: ServingConfig | None, labels: dict[str, str],
    ) -> ModelVersion:
        """Registers a checked file or folder; external data must lie within `root`."""
        # A checkpoint (config.json + SafeTensors/PyTorch weights, folder or file) becomes ONNX first (conversion.py).
        converted = await self.converter.convert_if_needed(str(source), self._checked_within(root, shown), shown)
        if converted is not None:
            staged = await asyncio.to_thread(self._blobs.stage, converted.onnx, self._settings.max_artifact_bytes, shown)
            return await self.register_staged(name, staged, None, shown, config, labels, None, converted)
        model_file = source
        if await asyncio.to_thread(source.is_dir):
            found = await asyncio.to_thread(sources.folder_model, source, root, shown)
            if found.model_file is None:
                sources.refuse_conversion(found, shown)  # the seam where conversion plugs in
            assert found.model_file is not None
            model_file = found.model_file
        fmt = await asyncio.to_thread(formats.sniff, model_file)
        if fmt is not None:
            formats.reject_unregistrable(fmt, shown)
        staged = await asyncio.to_thread(self._blobs.stage, model_file, self._settings.max_artifact_bytes, shown)
        return await self.register_staged(name, staged, fmt, shown, config, labels, (model_file, root))

    def _checked_within(self, root: Path, shown: str) -> Callable[[str], Path]:
        """A check for each file a conversion reads: the registry's path rules, and inside `root`."""
        def check(raw: str) -> Path:
            path = sources.check_path(raw, self._roots, self._settings.max_artifact_bytes)
            if not path.is_relative_to(root):
                raise InvalidPath(f"{shown}: {Path(raw).name[:100]!r} resolves outside the model's folder")
            return path
        return check

    async def register_staged(
        self, name: str, staged: StagedBlob, fmt: str | None, shown: str, config: ServingConfig | None,
        labels: dict[str, str], origin: tuple[Path, Path] | None, converted: Converted | None = None,
    ) -> ModelVersion:
        """Describes and commits a staged single file (always discarding the temp copy). An ONNX file
        with external data is registered as a bundle of `origin` = (its model file, containment root)."""
        try:
            try:
                # Inspect the staged copy: what we check is exactly what we store.
                described = await asyncio.to_thread(
                    _describe, fmt, staged.temp_path, shown, config, name, self._settings.default_max_batch_size
                )
            except signature.HasExternalData:
                if origin is None:
                    raise InvalidModelFile(
                        f"{shown} keeps tensors in external data files; upload (or register) its folder instead"
                    ) from None
            else:
                if converted:  # the checkpoint's facts and task (embed when it pools) on the ONNX's
                    described = replace(described, task=converted.task, facts={**described.facts, **converted.facts})
                return await self._commit(name, staged, described, labels)
        finally:
            await asyncio.to_thread(self._blobs.discard, staged)
        return await self._register_bundle(name, origin[0], origin[1], shown, config, labels)

    async def _register_bundle(
        self, name: str, model_file: Path, root: Path, shown: str, config: ServingConfig | None,
        labels: dict[str, str],
    ) -> ModelVersion:
        """An ONNX model with external data, stored as one canonical tar (mlos_common.bundle)."""
        limit = self._settings.max_artifact_bytes
        plan = await asyncio.to_thread(bundle.plan_onnx, model_file, root, shown, limit)
        staged = await asyncio.to_thread(
            self._blobs.stage_with,
            lambda out: write_bundle(out, plan.model_rel, plan.files, lambda p: formats.open_regular(p, shown)),
            limit, shown,
        )
        try:
            sig = await asyncio.to_thread(signature.inspect_model, plan.model, shown)
            facts = {"bundle_files": str(len(plan.files)), "model_file": plan.model_rel}
            described = _onnx_described(sig, config, name, self._settings.default_max_batch_size, facts)
            return await self._commit(name, staged, described, labels)
        finally:
            await asyncio.to_thread(self._blobs.discard, staged)

    async def _commit(self, name: str, staged: StagedBlob, described: _Described, labels: dict[str, str]) -> ModelVersion:
        """Makes the staged blob visible under its digest and commits the row (in that order)."""
        draft = ModelVersion(
            name=name,
            version=0,
            format=described.format,
            sha256=staged.sha256,
            size_bytes=staged.size_bytes,
            inputs=described.sig.inputs,
            outputs=described.sig.outputs,
            config=described.config,
            labels=labels,
            task=described.task,
            facts=described.facts,
            created_unix_ms=int(time.time() * 1000),
        )
        async with self._write_lock:
            await asyncio.to_thread(self._blobs.commit, staged)
            stored, created = await self._store.add_version(draft)
        if created:
            await self._feed.notify()
            log.info("registered %s version %d (%s, %s, %d bytes)", name, stored.version, stored.format,
                     stored.sha256[:12], stored.size_bytes)
        else:
            log.info("%s: identical bytes already registered as version %d", name, stored.version)
        return stored

    async def listing(self, name: str = "") -> tuple[list[ModelVersion], int]:
        """As `list`, with the revision it reflects (watch from it to follow on)."""
        if name:
            validate_name(name)
        return await self._store.listing(name)

    async def list(self, name: str = "") -> list[ModelVersion]:
        """Every version of `name`, or of every model when name is empty (ordered by name, version)."""
        return (await self.listing(name))[0]

    async def get(self, name: str, version: int = 0, alias: str = "") -> ModelVersion:
        """One version: `version`, or the one `alias` points to ("latest" = the highest), else the latest."""
        validate_name(name)
        validate_version(version)
        check_version_or_alias(version, alias)
        if alias and alias != LATEST:
            _checked_alias(alias)
        found = await self._store.get(name, version, "" if alias == LATEST else alias)
        if found is None:
            raise self._not_found(name, version)
        return found

    async def set_alias(self, name: str, alias: str, version: int) -> ModelVersion:
        """Points `alias` at an existing `version` (creates or moves it); returns that version."""
        validate_name(name)
        _checked_alias(alias)
        if version < 1:
            raise InvalidArgument(f"version must be >= 1 to point alias {alias!r} at, got {version}")
        async with self._write_lock:
            await self._store.set_alias(name, alias, version)
        await self._feed.notify()
        log.info("alias %s:%s -> version %d", name, alias, version)
        return await self.get(name, version)

    async def delete_alias(self, name: str, alias: str) -> int:
        """Removes `alias`; returns the version it pointed to."""
        validate_name(name)
        _checked_alias(alias)
        async with self._write_lock:
            version = await self._store.delete_alias(name, alias)
        await self._feed.notify()
        return version

    def watch(self, since_revision: int) -> AsyncIterator[ModelChange]:
        """Changes after `since_revision`, replayed then live (see lifecycle.ChangeFeed)."""
        return self._feed.watch(since_revision)

    async def delete(self, name: str, version: int = 0, force: bool = False) -> int:
        """Deletes one version, or every version when version is 0; returns how many. Refused
        (AliasInUse) for a version an alias points to unless `force`, which deletes the alias too."""
        validate_name(name)
        validate_version(version)
        async with self._write_lock:
            deleted = await self._store.delete(name, version, force)
            if not deleted:
                raise self._not_found(name, version)
            await self._feed.notify()
            for digest in {d.sha256 for d in deleted}:
                if not await self._store.digest_in_use(digest):
                    await asyncio.to_thread(self._blobs.delete, digest)
        log.info("deleted %d version(s) of %s", len(deleted), name)
        return len(deleted)

    async def open_artifact(self, name: str, version: int = 0) -> tuple[str, str, int]:
        """(path on this host, sha256, size) of a version's bytes; the path never leaves the process."""
        found = await self.get(name, version)
        path = self._blobs.path(found.sha256)
        if not await asyncio.to_thread(path.is_file):
            raise ArtifactCorrupt(
                f"the stored artifact of {name!r} version {found.version} is missing; delete and re-register it"
            )
        return str(path), found.sha256, found.size_bytes

    async def read_artifact(
        self, name: str, version: int, chunk_bytes: int, alias: str = ""
    ) -> tuple[ModelVersion, AsyncIterator[Chunk]]:
        """The version and a verified chunk stream of its bytes (ArtifactCorrupt on mismatch)."""
        found = await self.get(name, version, alias)
        what = f"{name!r} version {found.version}"
        return found, self._blobs.read_verified(found.sha256, found.size_bytes, chunk_bytes, what)

    @staticmethod
    def _not_found(name: str, version: int) -> ModelNotFound:
        if version:
            return ModelNotFound(f"model {name!r} has no version {version}")
        return ModelNotFound(f"model {name!r} is not registered")
