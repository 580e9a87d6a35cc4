"""`create_app(settings)`: the FastAPI app, built from explicit parts inside its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from search import __version__
from search.api.errors import install_error_handlers
from search.api.limits import BodyLimit
from search.api.metrics import Metrics
from search.api.routes import (
    aliases,
    collections,
    documents,
    embeddings,
    jobs,
    migrations,
    ops,
    web,
)
from search.api.routes import search as search_routes
from search.embedders import Embedder
from search.engine import Engine
from search.index_keeper import IndexKeeper
from search.ingestion import Ingestion
from search.settings import Settings

DESCRIPTION = (
    "Cross-lingual semantic search: add documents in any language, search them with a "
    'question in any other. Errors are `{"error": {"code", "message"}}`.'
)


def create_app(
    settings: Settings, embedder: Embedder | None = None, *, worker: bool = True
) -> FastAPI:
    """The API; the model loads, the database migrates and indexes catch up on startup.

    `embedder` lets tests share one loaded model; `worker=False` serves without ingesting.
    """
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = await run_in_threadpool(
            partial(Engine.open, settings, embedder, background_catch_up=True)
        )
        await run_in_threadpool(engine.searcher.warm_up)
        metrics.attach(engine)
        keeper = IndexKeeper(
            engine.store, engine.indexes, settings.catch_up_interval_s,
            settings.snapshot_interval_s, engine.translations,
        )
        keeper.start()
        from indexer.entry import LocalIngestion  # the one way in to the ingestion side

        ingestion: Ingestion = LocalIngestion(engine)
        running_worker = ingestion.start_worker(engine.refresh) if worker else None
        app.state.engine, app.state.keeper, app.state.ingestion = engine, keeper, ingestion
        try:
            yield
        finally:
            if running_worker is not None:
                await run_in_threadpool(running_worker.stop)
            await run_in_threadpool(keeper.stop)
            engine.close()

    app = FastAPI(
        title="xlsearch",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by routes.ops instead, behind the read keys like everything that tells
        # what the server holds.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.api_keys = [key.get_secret_value().encode() for key in settings.api_keys]
    app.state.open_reads = settings.open_reads
    app.state.open_embeddings = settings.open_embeddings
    app.state.metrics = metrics
    for module in (ops, collections, migrations, aliases, documents, jobs, search_routes,
                   embeddings):
        app.include_router(module.router)
    web.install(app)
    install_error_handlers(app)
    metrics.install(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_request_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        timeout_s=settings.body_timeout_s,
    )
    return app
