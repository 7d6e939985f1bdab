"""OpenTelemetry: a tracer provider per service, spans on every RPC, context across hops.

Every RPC gets a span and its trace context travels in gRPC metadata to the next hop. Spans are
*recorded* only when someone will read them: when an OTLP endpoint (or another span processor)
is configured, or when the caller's context says the trace is sampled (ParentBased). With no
exporter, spans are non-recording: trace ids still propagate, but no attributes or events are
built on the data plane for nobody.
"""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased


def build_tracer_provider(service: str, otlp_endpoint: str = "", *extra: SpanProcessor) -> TracerProvider:
    exporting = bool(otlp_endpoint or extra)
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"mlos-{service}"}),
        sampler=ParentBased(root=ALWAYS_ON if exporting else ALWAYS_OFF),
    )
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True)))
    for processor in extra:
        provider.add_span_processor(processor)
    return provider
