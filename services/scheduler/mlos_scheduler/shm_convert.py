"""System shared memory at the front door: Triton's tensor parameters and RPC messages.

A tensor is placed in shared memory by three parameters, parsed as Triton does:
"shared_memory_region" (string, required with the others), "shared_memory_byte_size" (int64,
required) and "shared_memory_offset" (int64, optional, into the registered region).
Inputs are read from their region after checking datatype x shape against the byte size; outputs
are written into their region after the answer, and the response then carries the output's
metadata with those parameters and an empty raw_output_contents entry (Triton keeps one entry per
output so positions stay aligned).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlos.inference import grpc_service_pb2 as pb
from mlos_common.errors import Unimplemented
from mlos_common.shm import Lease, RegionInfo, ShmRegistry, ShmSpan
from mlos_common.tensors import check_raw_size
from mlos_scheduler import convert
from mlos_scheduler.domain import InferResult, Tensor
from mlos_scheduler.errors import BadRequest

REGION, OFFSET, BYTE_SIZE = "shared_memory_region", "shared_memory_offset", "shared_memory_byte_size"
CUDA_UNSUPPORTED = (
    "CUDA shared memory needs a GPU executor and MLOS does not implement it yet; "
    "use system shared memory (register_system_shared_memory) or send tensors in the message"
)


@dataclass(frozen=True, slots=True)
class ShmRef:
    region: str
    offset: int
    byte_size: int


def _int(params, key: str, what: str) -> int:
    p = params[key]
    if p.WhichOneof("parameter_choice") != "int64_param":
        raise BadRequest(f"invalid value type for {key!r} parameter for {what}, expected int64_param")
    return p.int64_param


def shm_ref(params, what: str) -> ShmRef | None:
    """The shared memory placement a tensor's parameters ask for, or None (Triton's rules)."""
    if REGION not in params:
        for key in (OFFSET, BYTE_SIZE):
            if key in params:
                raise BadRequest(f"{key!r} can not be specified without {REGION!r} parameter for {what}")
        return None
    region = params[REGION]
    if region.WhichOneof("parameter_choice") != "string_param":
        raise BadRequest(f"invalid value type for {REGION!r} parameter for {what}, expected string_param")
    if BYTE_SIZE not in params:
        raise BadRequest(f"{BYTE_SIZE!r} must be specified along with {REGION!r} parameter for {what}")
    offset = _int(params, OFFSET, what) if OFFSET in params else 0
    return ShmRef(region.string_param, offset, _int(params, BYTE_SIZE, what))


class ShmRequest:
    """Leases the regions one inference request names, for as long as the request runs.

    Output regions are leased (and so checked to exist) before the request is queued; each
    region is leased once however many tensors use it. Use as a context manager.
    """

    def __init__(self, registry: ShmRegistry, msg: pb.ModelInferRequest) -> None:
        self._registry = registry
        self._leases: dict[str, Lease] = {}
        self._outputs: dict[str, ShmRef] = {}
        try:
            for o in msg.outputs:
                ref = shm_ref(o.parameters, f"output {o.name!r}") if o.parameters else None
                if ref is not None:
                    self._lease(ref.region)
                    self._outputs[o.name] = ref
        except BaseException:
            self.close()
            raise

    def _lease(self, region: str) -> Lease:
        lease = self._leases.get(region)
        if lease is None:
            lease = self._leases[region] = self._registry.lease(region)
        return lease

    def input_tensor(self, t: pb.ModelInferRequest.InferInputTensor) -> Tensor:
        """The input's bytes from its region, after checking them against datatype x shape."""
        what = f"input {t.name!r}"
        ref = shm_ref(t.parameters, what)
        if ref is None:
            raise BadRequest(f"{what} has no {REGION!r} parameter")
        if t.HasField("contents"):
            raise BadRequest(f"unexpected 'contents' provided when using shared memory for {what}")
        check_raw_size(t.name, t.datatype, t.shape, ref.byte_size)
        lease = self._lease(ref.region)
        view = lease.read(ref.offset, ref.byte_size, what)
        # No copy: a co-located executor maps the client's window itself; otherwise the link
        # copies the view into the message. The view lives no longer than the lease.
        window = ShmSpan(lease.info.key, lease.info.offset + ref.offset, ref.byte_size)
        return Tensor(t.name, t.datatype, tuple(t.shape), view, window)

    def output_windows(self) -> dict[str, ShmSpan]:
        """The client windows of outputs placed in shared memory that lie inside their region
        (others are left to `respond`, which reports the bad offset)."""
        windows = {}
        for name, ref in self._outputs.items():
            info = self._leases[ref.region].info
            if 0 <= ref.offset and 0 < ref.byte_size and ref.offset + ref.byte_size <= info.byte_size:
                windows[name] = ShmSpan(info.key, info.offset + ref.offset, ref.byte_size)
        return windows

    def write_outputs(self, result: InferResult) -> dict[str, ShmRef]:
        """Writes the outputs placed in shared memory and empties their `raw`; returns the
        placements by output name (a protocol's response names them in the output's parameters)."""
        for t in result.outputs:
            ref = self._outputs.get(t.name)
            if ref is None:
                continue
            if t.window is not None:  # the executor wrote it into the client's window already
                self._leases[ref.region].count_written(t.window.byte_size)
                continue
            if len(t.raw) > ref.byte_size:
                raise BadRequest(
                    f"shared memory size specified with the request for output {t.name!r} "
                    f"({ref.byte_size} bytes) should be at least {len(t.raw)} bytes to hold the results"
                )
            self._leases[ref.region].write(ref.offset, t.raw, f"output {t.name!r}")
            t.raw = b""
        return self._outputs

    def respond(self, result: InferResult) -> pb.ModelInferResponse:
        """Writes the outputs placed in shared memory, then builds the response without their bytes."""
        self.write_outputs(result)
        response = convert.infer_response(result)
        if self._outputs:
            for out in response.outputs:
                ref = self._outputs.get(out.name)
                if ref is not None:
                    out.parameters[REGION].string_param = ref.region
                    out.parameters[BYTE_SIZE].int64_param = ref.byte_size
                    if ref.offset:
                        out.parameters[OFFSET].int64_param = ref.offset
        return response

    def close(self) -> None:
        for lease in self._leases.values():
            lease.release()
        self._leases.clear()

    def __enter__(self) -> ShmRequest:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def system_status(regions: list[RegionInfo]) -> pb.SystemSharedMemoryStatusResponse:
    status = pb.SystemSharedMemoryStatusResponse.RegionStatus
    return pb.SystemSharedMemoryStatusResponse(
        regions={r.name: status(name=r.name, key=r.key, offset=r.offset, byte_size=r.byte_size) for r in regions}
    )


def cuda_unsupported() -> Unimplemented:
    return Unimplemented(CUDA_UNSUPPORTED)
