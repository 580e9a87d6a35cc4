"""Search: the JSON endpoint per collection and a GET form for links and the web page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from search.api.deps import EngineDep, require_json
from search.api.models import error_responses
from search.api.security import require_read
from search.collections import DEFAULT_COLLECTION
from search.engine import Engine
from search.schemas import (
    COLLAPSE_DESCRIPTION,
    DEFAULT_MODE,
    PREFER_DESCRIPTION,
    Collapse,
    SearchMode,
    SearchRequest,
    SearchResponse,
)

router = APIRouter(tags=["search"], dependencies=[Depends(require_read)])


def _answer(
    engine: Engine, collection: str, request: SearchRequest, response: Response
) -> SearchResponse:
    """Search, and say where the time went in a `Server-Timing` header (browsers show it)."""
    result, watch = engine.searcher.search_timed(collection, request)
    stages = [f"{name};dur={ms:.2f}" for name, ms in watch.stages_ms.items()]
    response.headers["Server-Timing"] = ", ".join([*stages, f"total;dur={result.took_ms:.2f}"])
    return result


@router.post(
    "/v1/collections/{name}/search",
    operation_id="search_collection",
    dependencies=[Depends(require_json)],
    responses=error_responses(404, 409, 415, 422),
)
def search_collection(
    name: str, body: SearchRequest, engine: EngineDep, response: Response
) -> SearchResponse:
    """One result per document, best first, with its best-matching chunk as the snippet."""
    return _answer(engine, name, body, response)


@router.get("/v1/search", operation_id="search", responses=error_responses(404, 409, 422))
def search_get(
    engine: EngineDep,
    response: Response,
    q: Annotated[str, Query(description="The question.")],
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    lang: Annotated[list[str] | None, Query(description="Only these languages.")] = None,
    collection: str = DEFAULT_COLLECTION,
    nprobe: Annotated[int | None, Query(ge=1, le=65536)] = None,
    offset: Annotated[int, Query(ge=0, description="Results to skip (paging).")] = 0,
    mode: Annotated[
        SearchMode, Query(description="dense, lexical or hybrid (the default).")
    ] = DEFAULT_MODE,
    collapse: Annotated[Collapse, Query(description=COLLAPSE_DESCRIPTION)] = "translations",
    prefer: Annotated[list[str] | None, Query(description=PREFER_DESCRIPTION)] = None,
) -> SearchResponse:
    """The same search as a GET, for links and the web page."""
    request = SearchRequest(
        query=q, k=k, languages=lang or None, nprobe=nprobe, offset=offset, mode=mode,
        collapse=collapse, prefer_languages=prefer or None,
    )
    return _answer(engine, collection, request, response)
