"""The front door's watch over its clients: who sent what (for the predictor) and the threat gate.

Every inference request - gRPC ModelInfer, each ModelStreamInfer message, REST infer - goes
through `FrontDoor.enter(...)` before anything else is done with it:

    with door.enter(header, peer, model_name, payload_bytes) as seen:
        request = <decode>
        seen.decoded(request)          # samples a bounded number of input values
        await core.infer(request)

`enter` counts the request for its model (RateBook) and its client (ClientBook), then asks the
threat gate, which may refuse the client at once (the refusal is counted too: the predictor
sees every request a client sends). On the way out an INVALID_ARGUMENT raised before the request
was queued counts as malformed, a ShapeMismatch also as a shape error.

Payload bytes: REST, the body's length; gRPC, the bytes of the decoded input tensors (in the
message or in shared memory; a request refused before its tensors are decoded counts 0). Not
the message's ByteSize: with upb that walks (and for bytes fields copies) the whole message,
~350 us for a 4.9 MB image.

Client id: the `x-mlos-client` gRPC metadata / REST header when present (1 to 128 printable
ASCII characters; anything else is refused as INVALID_ARGUMENT, counted as a malformed request
of the peer host), else the peer's host ("127.0.0.1": on loopback all clients share one host,
so give each its own `x-mlos-client`).

Loopback exemption (on by default): a peer on this host that sends no x-mlos-client - the
suite's own CLI, benchmarks, tests, a sidecar - is counted and scored but never refused: all
of them share one identity, and a load test's ramp is a burst to the threat model's prior, so
refusing "127.0.0.1" would refuse every local tool at once.

A door without a predictor is inactive: `enter` is never called and costs nothing.
Domain only: no grpc (the callers pass the header's value and the peer's address as text).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlos_common.errors import InvalidArgument, MlosError
from mlos_scheduler.client_stats import ClientBook, ClientCounts, RateBook
from mlos_scheduler.domain import InferRequest
from mlos_scheduler.errors import BadRequest, ShapeMismatch
from mlos_scheduler.threat import ThreatGate

CLIENT_HEADER = "x-mlos-client"
MAX_CLIENT_CHARS = 128


def header_of(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The x-mlos-client value in gRPC invocation metadata (keys are lower case), or None."""
    for key, value in metadata or ():
        if key == CLIENT_HEADER:
            return value if isinstance(value, str) else repr(value)
    return None


def peer_host(peer: str) -> str:
    """The host of a gRPC peer or an HTTP remote address: "ipv4:127.0.0.1:5123" -> "127.0.0.1",
    "ipv6:[::1]:5123" -> "::1", "10.0.0.7" -> "10.0.0.7"; "unix:..." and others stay whole."""
    if peer.startswith("ipv4:"):
        return peer[5:].rpartition(":")[0] or peer[5:]
    if peer.startswith("ipv6:"):
        host = peer[5:].rpartition(":")[0] or peer[5:]
        return host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return peer or "unknown"


def is_loopback(host: str) -> bool:
    """A peer host on this machine: 127.0.0.0/8, ::1, ::ffff:127.x, a Unix socket, localhost."""
    return host.startswith(("127.", "::ffff:127.", "unix:")) or host in ("::1", "localhost")


def bad_client_header(value: str) -> str | None:
    """Why an x-mlos-client value is refused, or None when it is a valid client id."""
    if not 1 <= len(value) <= MAX_CLIENT_CHARS or not value.isascii() or not value.isprintable():
        return (
            f"{CLIENT_HEADER} must be 1 to {MAX_CLIENT_CHARS} printable ASCII characters "
            f"(got {len(value)} characters: {value[:40]!r}); it names the client in telemetry and threat decisions"
        )
    return None


class Seen:
    """One request at the door: what is learned of it goes to its client's window."""

    __slots__ = ("_counts", "_request", "_bytes")

    def __init__(self, counts: ClientCounts | None, payload_bytes: int = 0) -> None:
        self._counts = counts
        self._request: InferRequest | None = None
        self._bytes = payload_bytes

    def __enter__(self) -> Seen:
        return self

    def decoded(self, request: InferRequest) -> None:
        """The request was decoded: samples its input values (a bounded number of elements), and
        takes its tensors' bytes as its payload unless the caller knew the payload's size."""
        if self._counts is not None:
            self._request = request
            if not self._bytes:
                self._bytes = sum(len(t.raw) for t in request.inputs)
            self._counts.values(request.inputs)

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        counts = self._counts
        if counts is None:
            return
        counts.payload(self._bytes)
        if isinstance(exc, InvalidArgument) and (self._request is None or not self._request.queued):
            counts.malformed += 1
            if isinstance(exc, ShapeMismatch):
                counts.shape_errors += 1


NOT_SEEN = Seen(None)  # for doors that watch nothing: records nothing


class FrontDoor:
    """`clients`/`rates`: the windows sent to the predictor; `gate`: the threat gate (None = no gate)."""

    def __init__(
        self, clients: ClientBook | None = None, rates: RateBook | None = None, gate: ThreatGate | None = None,
        exempt_loopback: bool = True,
    ) -> None:
        """`exempt_loopback`: loopback peers without x-mlos-client are never refused by the gate."""
        self.clients = clients
        self.rates = rates
        self.gate = gate
        self.exempt_loopback = exempt_loopback

    @property
    def active(self) -> bool:
        return self.clients is not None or self.rates is not None or self.gate is not None

    def enter(self, header: str | None, peer: str, model: str, payload_bytes: int = 0) -> Seen:
        """Counts the request, then refuses it if its client is flagged (raises ClientRateLimited /
        ClientDenied) or its x-mlos-client is not valid (BadRequest). `payload_bytes`: the
        request's size when the caller knows it cheaply (REST: the body's length), else 0."""
        bad = bad_client_header(header) if header is not None else None
        client = header if header is not None and bad is None else peer_host(peer)
        if self.rates is not None:
            self.rates.count(model)
        seen = Seen(self.clients.record(client) if self.clients is not None else None, payload_bytes)
        error: MlosError | None = BadRequest(bad) if bad is not None else None
        if error is None and self.gate is not None:
            exempt = header is None and self.exempt_loopback and is_loopback(client)
            error = self.gate.refusal(client, exempt)
        if error is not None:
            with seen:
                raise error
        return seen
