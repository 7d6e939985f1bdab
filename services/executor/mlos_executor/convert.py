"""Executor protobuf <-> domain: loaded models, work items and their outcomes."""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from mlos.common.v1 import tensor_pb2
from mlos.executor.v1 import executor_pb2 as pb
from mlos_common.errors import InvalidArgument, MlosError
from mlos_common.shm import Window
from mlos_common.signatures import TensorSpec
from mlos_common.tensors import array_from_raw, array_to_raw
from mlos_executor.core import ExecutorCore, LoadedModel, WorkItem, WorkOutcome
from mlos_executor.generation import ChunkOut, GenerationSpec
from mlos_executor.gpu import gpu_budget_bytes
from mlos_executor.llama_backend import DEFAULT_CHUNK_TOKENS, DEFAULT_CONTEXTS, LlamaSettings
from mlos_executor.llama_models import GenerationModel
from mlos_executor.numa import format_cpus
from mlos_executor.pool import BufferPool
from mlos_executor.sampling import SamplingParams
from mlos_executor.shared_weights import loaded_sharing
from mlos_executor.stream_shm import StreamShm
from mlos_executor.warmup import WarmupTiming


def spec_pb(spec: TensorSpec) -> tensor_pb2.TensorSpec:
    return tensor_pb2.TensorSpec(name=spec.name, datatype=spec.datatype, shape=spec.shape)


def loaded_pb(m: LoadedModel) -> pb.LoadedModel:
    memory = m.memory
    return pb.LoadedModel(
        model=pb.ModelKey(name=m.name, version=m.version),
        sha256=m.sha256,
        runtime=getattr(m.model, "runtime", "onnxruntime"),
        task=m.task,
        generation=generation_stats_pb(m.model) if isinstance(m.model, GenerationModel) else None,
        providers=m.model.providers,
        inputs=[spec_pb(s) for s in m.model.inputs],
        outputs=[spec_pb(s) for s in m.model.outputs],
        load_ms=m.load_ms,
        executions=m.executions,
        in_flight=m.in_flight,
        intra_op_threads=m.threads,
        wide_intra_op_threads=m.wide_threads,
        wide_runs=m.wide_runs,
        mean_run_us=m.mean_run_ns // 1000,
        inline_runs=m.inline_runs,
        memory_bytes=memory.bytes if memory is not None else 0,
        memory_predicted_bytes=memory.predicted_bytes if memory is not None else 0,
        memory_predicted_by=memory.predicted_by if memory is not None else "",
        idle_ms=(time.monotonic_ns() - m.last_used_ns) // 1_000_000,
        busy=m.busy,
        instances=m.instances,
        shared_weight_bytes=sum(s.nbytes for s in getattr(m.model, "shared", ())),
    )


def hardware_status(core: ExecutorCore) -> dict:
    """StatusResponse fields of the memory budget, evictions, runtime mode, NUMA placement, GPUs,
    the output pool and the shared weights."""
    budget, hardware = core.memory.budget, core.hardware
    assert hardware is not None, "the core detects its hardware at start"
    p = hardware.placement
    return dict(
        runtime_mode=hardware.runtime.mode,
        runtime_mode_reason=hardware.runtime.reason,
        memory_budget_bytes=budget.budget_bytes,
        memory_used_bytes=budget.used_bytes,
        memory_free_bytes=budget.free_bytes(),
        evictions=core.evictor.evictions,
        recent_evictions=[pb.EvictionRecord(
            model=pb.ModelKey(name=e.key[0], version=e.key[1]), memory_bytes=e.bytes, reason=e.reason,
            for_model=pb.ModelKey(name=e.for_key[0], version=e.for_key[1]), idle_s=e.idle_s,
        ) for e in core.evictor.recent],
        placement=pb.Placement(pinned=p.pinned, numa_node=p.node, cpus=format_cpus(p.cpus), numa_nodes=p.nodes,
                               reason=p.reason),
        gpus=[pb.GpuDevice(index=g.index, name=g.name, total_bytes=g.total_bytes, free_bytes=g.free_bytes,
                           budget_bytes=gpu_budget_bytes(g), pci_bus_id=g.pci_bus_id, used=g == hardware.gpu)
              for g in hardware.gpus],
        gpu_note=hardware.gpu_note,
        memory_pool=pool_pb(core.pool),
        shared_weights=sharing_pb(core),
    )


def pool_pb(pool: BufferPool | None) -> pb.BufferPoolStats:
    if pool is None:
        return pb.BufferPoolStats(enabled=False)
    return pb.BufferPoolStats(
        enabled=True, hits=pool.hits, misses=pool.misses, allocations=pool.allocations,
        allocated_bytes=pool.allocated_bytes, held_bytes=pool.held_bytes,
    )


def sharing_pb(core: ExecutorCore) -> pb.SharedWeightStats:
    if core.shared_weights is None:
        return pb.SharedWeightStats(enabled=False)
    stats = loaded_sharing(core.models.values())
    return pb.SharedWeightStats(
        enabled=True, held_bytes=stats.held_bytes, saved_bytes=stats.saved_bytes,
        initializers=stats.initializers, reused=core.shared_weights.reused,
    )


def generation_stats_pb(model: GenerationModel) -> pb.GenerationStats:
    weights, scheduler, counters = model.weights, model.scheduler, model.scheduler.counters
    return pb.GenerationStats(
        context_length=weights.n_ctx, contexts=len(weights.contexts), threads=weights.settings.resolved_threads(),
        chunk_tokens=scheduler.chunk_tokens, active=scheduler.active, waiting=scheduler.waiting,
        completed=counters.completed, cancelled=counters.cancelled, preemptions=counters.preemptions,
        state_saves=counters.state_saves, state_restores=counters.state_restores, tokens=counters.tokens,
        gpu_layers=weights.gpu_layers,
    )


def llama_settings(config: tensor_pb2.ModelServingConfig) -> LlamaSettings:
    """A GGUF model's serving settings from LoadModelRequest.config (0 = default)."""
    return LlamaSettings(
        context_length=config.context_length, threads=config.threads,
        chunk_tokens=config.chunk_tokens or DEFAULT_CHUNK_TOKENS, gpu_layers=max(0, config.gpu_layers),
        contexts=config.contexts or DEFAULT_CONTEXTS, device=config.device or "auto",
    )


def generation_spec(work: pb.Work) -> GenerationSpec:
    """Work.generate as the token scheduler's spec; deadlines from now (arrival at the executor)."""
    g = work.generate
    now = time.perf_counter_ns()
    if g.max_tokens < 1:
        raise InvalidArgument("sampling_parameters.max_tokens must be at least 1")
    return GenerationSpec(
        prompt=g.prompt, max_tokens=g.max_tokens,
        sampling=SamplingParams(temperature=g.temperature, top_p=g.top_p or 1.0, top_k=g.top_k),
        seed=g.seed if g.HasField("seed") else None, stop=tuple(g.stop), priority=g.priority,
        deadline_ns=now + work.timeout_us * 1000 if work.timeout_us else 0,
        first_token_deadline_ns=now + g.first_token_timeout_us * 1000 if g.first_token_timeout_us else 0,
        stream=g.stream,
    )


def chunk_result(work_id: int, out: ChunkOut | MlosError) -> pb.WorkResult:
    if isinstance(out, MlosError):
        return failed_result(work_id, out)
    return pb.WorkResult(id=work_id, compute_ns=out.decode_ns, chunk=pb.GenerationChunk(
        text=out.text, tokens=out.tokens, final=out.final, finish_reason=out.finish_reason,
        prompt_tokens=out.prompt_tokens, first_token_ns=out.first_token_ns, queued_ns=out.queued_ns,
        preemptions=out.preemptions, decode_ns=out.decode_ns,
    ))


def warmup_pb(timings: list[WarmupTiming]) -> list[pb.WarmupTiming]:
    return [pb.WarmupTiming(batch_size=t.batch_size, runs=t.runs, mean_ms=t.mean_ms, max_ms=t.max_ms) for t in timings]


def feeds(inputs) -> dict[str, np.ndarray]:
    """Input tensors wrapped as arrays without copying; sizes checked against shapes first.
    Shared memory refs are for the Execute stream only (see stream_shm)."""
    for t in inputs:
        if t.HasField("shm"):
            raise InvalidArgument(f"input {t.name!r}: shared memory refs are accepted on the Execute stream only")
    return {t.name: array_from_raw(t.name, t.datatype, t.shape, t.raw) for t in inputs}


def outputs_pb(outputs: list[tuple[TensorSpec, np.ndarray]]) -> list[tensor_pb2.Tensor]:
    return [
        tensor_pb2.Tensor(name=spec.name, datatype=spec.datatype, shape=array.shape, raw=array_to_raw(array))
        for spec, array in outputs
    ]


def group_work(works) -> dict[tuple[str, int], list[pb.Work]]:
    """The works of one stream message, grouped by model version, in arrival order."""
    groups: dict[tuple[str, int], list[pb.Work]] = defaultdict(list)
    for work in works:
        groups[(work.model.name, work.model.version)].append(work)
    return groups


def work_item(work: pb.Work, shm: StreamShm | None = None, opened: list[Window] | None = None) -> WorkItem:
    """Inputs with an shm ref are read in place through `shm`; windows it opens go into `opened`
    (required with `shm`: the caller closes them after the work)."""
    deadline_ns = time.perf_counter_ns() + work.timeout_us * 1000 if work.timeout_us else 0
    if shm is None or not any(t.HasField("shm") for t in work.inputs):
        return WorkItem(feeds(work.inputs), list(work.output_names), deadline_ns)
    assert opened is not None, "work_item: `opened` is required with `shm`"
    arrays = {
        t.name: shm.input_array(t, opened) if t.HasField("shm") else array_from_raw(t.name, t.datatype, t.shape, t.raw)
        for t in work.inputs
    }
    return WorkItem(arrays, list(work.output_names), deadline_ns)


def failed_result(work_id: int, error: MlosError) -> pb.WorkResult:
    return pb.WorkResult(id=work_id, error_code=error.code, error_message=error.message)


def result_pb(work: pb.Work, outcome: WorkOutcome, shm: StreamShm | None = None,
              opened: list[Window] | None = None) -> pb.WorkResult:
    """Outputs go where the work asks (see StreamShm.outputs_pb) when `shm` is given, else inline."""
    error = outcome.error
    if error is None:
        try:
            if shm is not None:
                assert opened is not None, "result_pb: `opened` is required with `shm`"
                outputs = shm.outputs_pb(work, outcome.outputs, opened)
            else:
                outputs = outputs_pb(outcome.outputs)
            return pb.WorkResult(id=work.id, outputs=outputs, compute_ns=outcome.compute_ns)
        except MlosError as exc:
            if shm is not None:
                shm.drop(work.id)
            error = exc
    return pb.WorkResult(
        id=work.id, compute_ns=outcome.compute_ns, error_code=error.code, error_message=error.message,
    )
