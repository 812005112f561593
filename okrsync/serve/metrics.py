"""GET /metrics: the service's state as Prometheus text (prometheus_client), read at scrape time."""

from __future__ import annotations

from typing import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from okrsync.domain.text import STATUS_LABELS

from .service import Service

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServeCollector(Collector):
    def __init__(self, service: Service):
        self.service = service

    def collect(self) -> Iterator[Metric]:
        s = self.service
        with s._lock:
            health = list(s.health.values())
            syncs = dict(s.counters.syncs)
            webhooks = dict(s.counters.webhooks)
            comp = s.computation
        yield GaugeMetricFamily("okrsync_up", "1 once the start-up sync has ended (ready)", value=1 if s.ready else 0)
        yield GaugeMetricFamily("okrsync_sync_in_progress", "1 while a sync runs", value=1 if s.worker.busy else 0)
        last_ok = GaugeMetricFamily("okrsync_source_last_success_timestamp_seconds",
                                    "Unix time the source last synced without error", labels=["source"])
        last = GaugeMetricFamily("okrsync_source_last_sync_timestamp_seconds",
                                 "Unix time the source's last sync ended", labels=["source"])
        failing = GaugeMetricFamily("okrsync_source_up", "1 when the source's last sync succeeded", labels=["source"])
        requests = CounterMetricFamily("okrsync_source_requests", "HTTP requests made to the source",
                                       labels=["source"])
        errors = CounterMetricFamily("okrsync_source_errors", "Syncs of the source that failed", labels=["source"])
        waits = CounterMetricFamily("okrsync_source_rate_limit_wait_seconds",
                                    "Seconds spent waiting for the source's rate limits and retries",
                                    labels=["source"])
        for h in health:
            if h.last_success is not None:
                last_ok.add_metric([h.source], h.last_success.timestamp())
            if h.last_sync is not None:
                last.add_metric([h.source], h.last_sync.timestamp())
                failing.add_metric([h.source], 0 if h.error else 1)
            requests.add_metric([h.source], h.requests)
            errors.add_metric([h.source], h.errors)
            waits.add_metric([h.source], h.rate_limit_wait_seconds)
        yield from (last_ok, last, failing, requests, errors, waits)
        runs = CounterMetricFamily("okrsync_syncs", "Sync runs by trigger and result", labels=["trigger", "status"])
        for (trigger, result), n in sorted(syncs.items()):
            runs.add_metric([trigger, result], n)
        yield runs
        hooks = CounterMetricFamily("okrsync_webhooks", "Webhooks received by source and result",
                                    labels=["source", "result"])
        for (source, result), n in sorted(webhooks.items()):
            hooks.add_metric([source, result], n)
        yield hooks
        if comp is None:
            return
        value = GaugeMetricFamily("okrsync_kr_value", "The key result's current value", labels=["kr", "objective"])
        progress = GaugeMetricFamily("okrsync_kr_progress", "Progress from baseline to target (0..1)",
                                     labels=["kr", "objective"])
        status = GaugeMetricFamily("okrsync_kr_status", "1 for the key result's current status",
                                   labels=["kr", "objective", "status"])
        score = GaugeMetricFamily("okrsync_objective_score", "The objective's score (0..1)", labels=["objective"])
        for o in comp.objectives:
            if o.score is not None:
                score.add_metric([o.objective.id], o.score)
            for k in o.key_results:
                if k.value is not None:
                    value.add_metric([k.kr.id, o.objective.id], k.value)
                if k.progress is not None:
                    progress.add_metric([k.kr.id, o.objective.id], k.progress)
                for name in STATUS_LABELS:
                    status.add_metric([k.kr.id, o.objective.id, name], 1 if name == k.status else 0)
        yield from (value, progress, status, score)


def registry_for(service: Service) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServeCollector(service))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
