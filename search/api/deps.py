"""What route functions receive: the process's engine, job store and way in to the ingestion
side, as annotated aliases.

Dependencies that do not block are `async def`: FastAPI runs a plain `def` dependency in its
thread pool, a thread hop per dependency per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from search.engine import Engine
from search.errors import UnsupportedMedia
from search.ingestion import Ingestion
from search.store.jobs import JobStore


async def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def _jobs(request: Request) -> JobStore:
    return JobStore(request.app.state.engine.store)


async def _ingestion(request: Request) -> Ingestion:
    ingestion: Ingestion = request.app.state.ingestion
    return ingestion


EngineDep = Annotated[Engine, Depends(_engine)]
JobsDep = Annotated[JobStore, Depends(_jobs)]
IngestionDep = Annotated[Ingestion, Depends(_ingestion)]


async def require_json(request: Request) -> None:
    """Routes with a JSON body refuse other content types with 415 (FastAPI would try to
    validate the raw bytes and answer a puzzling 422)."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMedia(
            f"send the body as JSON with 'Content-Type: application/json' (got "
            f"{media_type or 'no content type'!r})"
        )
