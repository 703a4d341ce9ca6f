"""Prometheus metrics, counted once per request (never per chunk).

Everything is recorded when a request ends, from the facts the request gathered on its way
(:class:`~poe2openai.engine.request_info.RequestInfo`): the log middleware calls
:meth:`Metrics.request_done`. The few live values (open streams, the rate-limit queue) move
once per request too. The relay loop itself never touches a metric.

Labels stay bounded whatever clients send: ``model`` is the Poe bot name only once Poe
accepted the query (Poe refuses unknown bots), ``-`` otherwise; ``route`` is the matched
route's pattern (``unmatched`` for paths no route knows); ``code`` comes from the gateway's
own error codes.

Several worker processes (gunicorn) share one view through ``prometheus_client``'s
multiprocess mode: when ``PROMETHEUS_MULTIPROC_DIR`` is set before the first import of
``prometheus_client`` (the gunicorn launcher sets it), every process writes its values to
files there and ``/metrics`` in any worker sums them.

The key pool (team mode) shows as ``poe2openai_pool_key_healthy{key}``,
``poe2openai_pool_key_balance_points{key}`` and ``poe2openai_pool_points_spent_total{key}``
(``key``: the pool key's id, never the key), read from the pool and the ledger when scraped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from poe2openai.engine.request_info import RequestInfo
from poe2openai.engine.traffic import FolderShare, Traffic

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
_OVERHEAD = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


def multiprocess_dir() -> str | None:
    """The folder of multiprocess mode, when several processes share the metrics."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class PoolCollector(Collector):
    """The pool keys as last read (:attr:`keys`: id, healthy, balance, points spent)."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, bool, int | None, int]] = []

    def collect(self) -> Iterator[Metric]:
        """The three pool families."""
        healthy = GaugeMetricFamily(
            "poe2openai_pool_key_healthy", "Whether a pool key takes requests now (1) or not (0)", labels=["key"]
        )
        balance = GaugeMetricFamily(
            "poe2openai_pool_key_balance_points", "A pool key's point balance at its last check", labels=["key"]
        )
        spent = CounterMetricFamily(
            "poe2openai_pool_points_spent", "Points a pool key spent, as its points history reports", labels=["key"]
        )
        for key, ok, points, used in self.keys:
            healthy.add_metric([key], 1.0 if ok else 0.0)
            if points is not None:
                balance.add_metric([key], float(points))
            spent.add_metric([key], float(used))
        yield from (healthy, balance, spent)


class _Children:
    """A labelled metric's children by their label values, remembered: ``labels()`` checks and
    converts its arguments under a lock on every call, several microseconds each."""

    __slots__ = ("_cache", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._cache: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._cache.get(values)
        if child is None:
            child = self._cache[values] = self._metric.labels(*values)
        return child


class Metrics:
    """The gateway's metrics, in a registry of its own (one per application)."""

    def __init__(self) -> None:
        self.registry = reg = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "poe2openai_requests",
            "Requests answered, by route, dialect, model and status",
            ["route", "dialect", "model", "status"],
            registry=reg,
        )
        self.duration = Histogram(
            "poe2openai_request_duration_seconds",
            "Total time of a request, last byte included",
            ["dialect", "stream"],
            buckets=_LATENCY,
            registry=reg,
        )
        self.ttft = Histogram(
            "poe2openai_time_to_first_token_seconds",
            "Time from the request to the answer's first output",
            ["dialect", "model"],
            buckets=_LATENCY,
            registry=reg,
        )
        self.overhead = Histogram(
            "poe2openai_gateway_overhead_seconds",
            "Time spent in the gateway excluding waits for Poe (streams: up to the headers)",
            ["dialect"],
            buckets=_OVERHEAD,
            registry=reg,
        )
        self.prompt_tokens = Counter(
            "poe2openai_prompt_tokens", "Prompt tokens of the requests the gateway counted", ["model"], registry=reg
        )
        self.completion_tokens = Counter(
            "poe2openai_completion_tokens",
            "Completion tokens of the answers the gateway counted",
            ["model"],
            registry=reg,
        )
        self.errors = Counter(
            "poe2openai_errors",
            "Requests that ended in an error (also inside a started stream), by error code",
            ["code", "status"],
            registry=reg,
        )
        self.open_streams = Gauge(
            "poe2openai_open_streams", "Streams in progress", registry=reg, multiprocess_mode="livesum"
        )
        self.queued = Gauge(
            "poe2openai_rate_limit_queue",
            "Requests waiting for their turn towards Poe",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.queue_wait = Histogram(
            "poe2openai_rate_limit_wait_seconds",
            "Time a request waited for its turn towards Poe",
            buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=reg,
        )
        self.cache_hits = Counter("poe2openai_attachment_cache_hits", "Attachments found in the cache", registry=reg)
        self.cache_misses = Counter(
            "poe2openai_attachment_cache_misses", "Attachments uploaded to Poe (not in the cache)", registry=reg
        )
        self.cache_bytes = Counter(
            "poe2openai_attachment_uploaded_bytes", "Bytes of the attachments uploaded to Poe", registry=reg
        )
        self.pool = PoolCollector()
        reg.register(self.pool)
        self._requests = _Children(self.requests)
        self._duration = _Children(self.duration)
        self._ttft = _Children(self.ttft)
        self._overhead = _Children(self.overhead)
        self._prompt_tokens = _Children(self.prompt_tokens)
        self._completion_tokens = _Children(self.completion_tokens)
        self._errors = _Children(self.errors)
        self.traffic = Traffic()  # the admin page's last hour
        folder = multiprocess_dir()
        # several workers without Redis: their traffic meets in the metrics' folder
        self.traffic_folder = FolderShare(folder, self.traffic.export) if folder else None

    def stream_opened(self) -> None:
        """A stream starts."""
        self.open_streams.inc()
        self.traffic.streams(1)

    def stream_closed(self) -> None:
        """A stream ends."""
        self.open_streams.dec()
        self.traffic.streams(-1)

    # --- the attachment cache's statistics (see UploadCache.stats) -----------------------

    def hit(self) -> None:
        """An attachment came from the cache."""
        self.cache_hits.inc()

    def miss(self, size: int) -> None:
        """An attachment of ``size`` bytes was uploaded."""
        self.cache_misses.inc()
        self.cache_bytes.inc(size)

    # --- per request --------------------------------------------------------------------

    def request_done(self, route: str, status: int, facts: RequestInfo, total: float) -> None:
        """Record one finished request (``total`` in seconds)."""
        dialect = facts.dialect or "-"
        model = facts.bot or "-"
        self._requests(route, dialect, model, str(status)).inc()
        if facts.dialect is None:
            return  # not a completion (models list, admin, metrics): counted, nothing more
        self._duration(dialect, "true" if facts.stream else "false").observe(total)
        if facts.ttft_ms is not None:
            self._ttft(dialect, model).observe(facts.ttft_ms / 1000)
        if facts.overhead_ms is not None:
            self._overhead(dialect).observe(facts.overhead_ms / 1000)
        if facts.queue_s is not None:
            self.queue_wait.observe(facts.queue_s)
        usage = facts.usage
        if usage is not None:
            self._prompt_tokens(model).inc(usage.prompt_tokens)
            self._completion_tokens(model).inc(usage.completion_tokens)
        if facts.error is not None:
            self._errors(facts.error, str(facts.error_status)).inc()
        ttft = facts.ttft_ms / 1000 if facts.ttft_ms is not None else None
        self.traffic.request(model, ttft, facts.error is not None or status >= 400)

    def exposition(self) -> bytes:
        """The text format, summed over every worker process in multiprocess mode."""
        folder = multiprocess_dir()
        if folder is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=folder)  # type: ignore[no-untyped-call]
        merged.register(self.pool)  # every worker holds the same keys: this one's view
        return generate_latest(merged)
