"""Prometheus metrics of one app: HTTP, embedding, jobs and indexes (own registry per app)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from fastapi import FastAPI, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from search.engine import Engine
from search.store.jobs import JobStore

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _StateCollector(Collector):
    """Values read at scrape time: job queue depth, vectors and catch-up age per collection."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        jobs = GaugeMetricFamily("xlsearch_jobs", "Jobs by status.", labels=["status"])
        store = JobStore(self._engine.store)
        for status in ("queued", "running"):
            jobs.add_metric([status], store.count(status))
        yield jobs
        processed, failed = store.items_handled()
        items = CounterMetricFamily(
            "xlsearch_job_items",
            "Job items handled by every worker on this database (rate() gives items/s).",
            labels=["outcome"],
        )
        items.add_metric(["processed"], processed)
        items.add_metric(["failed"], failed)
        yield items
        labels = ["collection", "generation"]  # two while a migration builds one
        vectors = GaugeMetricFamily(
            "xlsearch_index_vectors", "Vectors in this process's index.", labels=labels
        )
        age = GaugeMetricFamily(
            "xlsearch_index_catch_up_age_seconds",
            "Seconds since the index last caught up with the database.",
            labels=labels,
        )
        now = time.monotonic()
        for current in self._engine.indexes.loaded():
            held = [current.collection.name, str(current.collection.generation)]
            vectors.add_metric(held, current.index.count)
            age.add_metric(held, now - current.caught_up_at)
        yield vectors
        yield age


class Metrics:
    """The app's metrics; `observe_embedding` is hooked into the embedder."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._count_tokens: Callable[[str], int] = len
        self.requests = Counter(
            "xlsearch_http_requests",
            "HTTP requests.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "xlsearch_http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.embedding_batches = Counter(
            "xlsearch_embedding_batches", "Embedding calls.", ["kind"], registry=self.registry
        )
        self.embedding_tokens = Counter(
            "xlsearch_embedding_tokens", "Tokens embedded.", ["kind"], registry=self.registry
        )
        self.embedding_seconds = Histogram(
            "xlsearch_embedding_duration_seconds",
            "Time per embedding call.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.job_items = Counter(
            "xlsearch_job_items",
            "Job items handled, by outcome.",
            ["outcome"],
            registry=self.registry,
        )

    def attach(self, engine: Engine) -> None:
        """Start reporting the engine's jobs, indexes and embedding calls."""
        self._count_tokens = engine.embedder.count_tokens
        engine.embedder.observer = self.observe_embedding
        self.registry.register(_StateCollector(engine))

    def observe_embedding(self, kind: str, texts: Sequence[str], seconds: float) -> None:
        self.embedding_batches.labels(kind).inc()
        self.embedding_tokens.labels(kind).inc(sum(map(self._count_tokens, texts)))
        self.embedding_seconds.labels(kind).observe(seconds)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type="text/plain; version=0.0.4")

    def install(self, app: FastAPI) -> None:
        """Count and time every HTTP request by route template."""
        app.add_middleware(_MeasureRequests, metrics=self)


class _MeasureRequests:
    """Plain ASGI middleware: Starlette's `BaseHTTPMiddleware` costs a task per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app starts a response

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, send_noting_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self._metrics.latency.labels(method, route).observe(time.perf_counter() - started)
            self._metrics.requests.labels(method, route, str(status)).inc()
