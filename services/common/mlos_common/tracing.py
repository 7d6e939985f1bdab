"""OpenTelemetry: a tracer provider per service, spans on every RPC, context across hops.

Tracing is paid for only when someone reads it. With an OTLP endpoint (or another span
processor) every RPC gets a span and its trace context travels in gRPC metadata to the next hop
(on the scheduler -> executor stream, inside each piece of work); a caller's sampled context is
followed (ParentBased). With nothing to export there is no tracer provider at all, so no
tracing interceptor runs on the data plane: measured, the interceptors alone cost 13-14 % of the
front door's CPU samples even with non-recording spans.
"""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased


def build_tracer_provider(service: str, otlp_endpoint: str = "", *extra: SpanProcessor) -> TracerProvider | None:
    """A provider exporting to `otlp_endpoint` and `extra`; None when there is nowhere to export."""
    if not (otlp_endpoint or extra):
        return None
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"mlos-{service}"}),
        sampler=ParentBased(root=ALWAYS_ON),
    )
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True)))
    for processor in extra:
        provider.add_span_processor(processor)
    return provider
