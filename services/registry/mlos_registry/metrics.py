"""The registry's own Prometheus metrics (per-RPC counts and latency come from mlos_common)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from mlos_registry.domain import ModelVersion


class RegistryMetrics:
    """`mlos_registry_registrations_total{source, artifact}`: registrations that returned a version
    (identical bytes again included), by source (path, hf, upload) and artifact (file, bundle)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.collector = registry or CollectorRegistry()
        self.registrations = Counter(
            "mlos_registry_registrations_total", "Registrations that returned a version, by source and artifact kind",
            ["source", "artifact"], registry=self.collector,
        )

    def count(self, source: str, artifact: str) -> float:
        return self.collector.get_sample_value(
            "mlos_registry_registrations_total", {"source": source, "artifact": artifact}
        ) or 0.0

    def registered(self, source: str, mv: ModelVersion) -> ModelVersion:
        self.registrations.labels(source=source, artifact="bundle" if "bundle_files" in mv.facts else "file").inc()
        return mv
