"""Protobuf <-> domain conversion, shared by the servicer and the client (no grpc here)."""

from __future__ import annotations

from dataclasses import asdict

from mlos.common.v1 import tensor_pb2
from mlos.registry.v1 import registry_pb2
from mlos_registry.domain import ModelChange, ModelVersion, ServingConfig, TensorSpec
from mlos_registry.upload import UploadHeader


def config_to_pb(config: ServingConfig) -> tensor_pb2.ModelServingConfig:
    return tensor_pb2.ModelServingConfig(**asdict(config))


def config_from_pb(pb: tensor_pb2.ModelServingConfig) -> ServingConfig:
    return ServingConfig(
        max_batch_size=pb.max_batch_size,
        max_queue_delay_us=pb.max_queue_delay_us,
        instance_count=pb.instance_count,
        device=pb.device,
        default_timeout_us=pb.default_timeout_us,
        default_priority=pb.default_priority,
        priority_levels=pb.priority_levels,
        preferred_batch_sizes=tuple(pb.preferred_batch_sizes),
        context_length=pb.context_length,
        threads=pb.threads,
        chunk_tokens=pb.chunk_tokens,
        gpu_layers=pb.gpu_layers,
        contexts=pb.contexts,
        warmup_batch_sizes=tuple(pb.warmup_batch_sizes),
    )


def spec_to_pb(spec: TensorSpec) -> tensor_pb2.TensorSpec:
    return tensor_pb2.TensorSpec(name=spec.name, datatype=spec.datatype, shape=list(spec.shape))


def spec_from_pb(pb: tensor_pb2.TensorSpec) -> TensorSpec:
    return TensorSpec(pb.name, pb.datatype, tuple(pb.shape))


def version_to_pb(mv: ModelVersion) -> registry_pb2.ModelVersion:
    return registry_pb2.ModelVersion(
        name=mv.name,
        version=mv.version,
        format=mv.format,
        sha256=mv.sha256,
        size_bytes=mv.size_bytes,
        inputs=[spec_to_pb(s) for s in mv.inputs],
        outputs=[spec_to_pb(s) for s in mv.outputs],
        config=config_to_pb(mv.config),
        labels=mv.labels,
        created_unix_ms=mv.created_unix_ms,
        task=mv.task,
        facts=mv.facts,
        aliases=list(mv.aliases),
    )


def version_from_pb(pb: registry_pb2.ModelVersion) -> ModelVersion:
    return ModelVersion(
        name=pb.name,
        version=pb.version,
        format=pb.format,
        sha256=pb.sha256,
        size_bytes=pb.size_bytes,
        inputs=tuple(spec_from_pb(s) for s in pb.inputs),
        outputs=tuple(spec_from_pb(s) for s in pb.outputs),
        config=config_from_pb(pb.config),
        labels=dict(pb.labels),
        created_unix_ms=pb.created_unix_ms,
        task=pb.task or "infer",
        facts=dict(pb.facts),
        aliases=tuple(pb.aliases),
    )


def change_to_pb(change: ModelChange) -> registry_pb2.ModelChange:
    return registry_pb2.ModelChange(
        revision=change.revision, kind=change.kind, name=change.name, version=change.version,
        alias=change.alias, unix_ms=change.unix_ms,
    )


def change_from_pb(pb: registry_pb2.ModelChange) -> ModelChange:
    return ModelChange(pb.revision, pb.kind, pb.name, pb.version, pb.alias, pb.unix_ms)


def upload_header_from_pb(pb: registry_pb2.UploadHeader) -> UploadHeader:
    return UploadHeader(
        name=pb.name, size_bytes=pb.size_bytes, sha256=pb.sha256,
        config=config_from_pb(pb.config) if pb.HasField("config") else None,
        labels=dict(pb.labels), archive=pb.archive, filename=pb.filename,
    )


def upload_header_to_pb(header: UploadHeader) -> registry_pb2.UploadHeader:
    pb = registry_pb2.UploadHeader(
        name=header.name, size_bytes=header.size_bytes, sha256=header.sha256, labels=dict(header.labels),
        archive=header.archive, filename=header.filename,
    )
    if header.config is not None:
        pb.config.CopyFrom(config_to_pb(header.config))
    return pb
