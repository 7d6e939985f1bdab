"""OpenTelemetry: a tracer provider per service, spans on every RPC, context across hops.

No exporter by default (spans are created and propagated, nothing leaves the process);
an OTLP/gRPC exporter when an endpoint is configured.
"""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanProcessor


def build_tracer_provider(service: str, otlp_endpoint: str = "", *extra: SpanProcessor) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": f"mlos-{service}"}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True)))
    for processor in extra:
        provider.add_span_processor(processor)
    return provider
