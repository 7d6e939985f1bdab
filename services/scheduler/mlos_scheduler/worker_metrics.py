"""The supervisor's /metrics: every worker's series with a `worker` label, plus its own.

Each worker keeps its own CollectorRegistry and serves it on a free metrics port of its own; the
supervisor scrapes them when it is scraped, so one target (the scheduler's metrics port) shows
the whole front door. Sum over `worker` for suite-wide numbers
(`sum without (worker) (rate(mlos_inference_request_success_total[1m]))`). A worker that does
not answer within `scrape_timeout_s` is left out of that scrape (its `mlos_scheduler_worker_up`
says whether it is ready).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

WorkerPorts = Callable[[], list[tuple[int, int]]]  # -> (worker index, metrics port) of live workers


class WorkerScrape:
    """A prometheus_client collector: scrapes each worker's /metrics and merges the families."""

    def __init__(self, host: str, ports: WorkerPorts, scrape_timeout_s: float = 2.0) -> None:
        self._host = host
        self._ports = ports
        self._timeout_s = scrape_timeout_s

    def _scrape(self, port: int) -> str | None:
        url = f"http://{self._host}:{port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=self._timeout_s) as reply:  # noqa: S310 - our own worker
                return reply.read().decode("utf-8")
        except OSError:
            return None

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for index, port in self._ports():
            text = self._scrape(port)
            if text is None:
                continue
            for family in text_string_to_metric_families(text):
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                for sample in family.samples:
                    merged.samples.append(sample._replace(labels={**sample.labels, "worker": str(index)}))
        yield from families.values()


class SupervisorMetrics:
    """The supervisor's own series: which workers are ready, their pids, restarts."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge(
            "mlos_scheduler_worker_up", "1 while the worker answers SERVING on its own port.", ["worker"],
            registry=registry,
        )
        self.pid = Gauge("mlos_scheduler_worker_pid", "Process id of the worker.", ["worker"], registry=registry)
        self.restarts = Counter(
            "mlos_scheduler_worker_restarts", "Workers restarted after an unexpected exit.", registry=registry
        )
