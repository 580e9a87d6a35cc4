"""Collections: list, create, show, delete."""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Iterator

from fastapi import APIRouter, Depends, Response, status
from fastapi.responses import StreamingResponse

from search.api.deps import EngineDep, require_json
from search.api.models import (
    CollectionIn,
    CollectionList,
    CollectionOut,
    DuplicatesIn,
    error_responses,
)
from search.api.routes.migrations import generations_out
from search.api.security import require_read, require_write
from search.collections import DEFAULT_COLLECTION, collection_spec
from search.duplicates import find_duplicates
from search.errors import Busy, CollectionNotFound, InvalidInput
from search.index_manager import index_key
from search.store.records import CollectionStats, GenerationInfo

router = APIRouter(prefix="/v1/collections", tags=["collections"])


def describe(
    engine: EngineDep, stats: CollectionStats, generations: list[GenerationInfo] | None = None
) -> CollectionOut:
    """The collection with its generations and the index this process searches for it."""
    info = stats.info
    if generations is None:
        generations = engine.store.generations(info.id)
    shown = generations_out(engine, info, generations)
    searched = index_key(engine.indexes.served(info, generations))
    loaded = {index_key(c.collection): c for c in engine.indexes.loaded()}
    index = loaded[searched].index.describe() if searched in loaded else {}
    return CollectionOut.build(stats, index, shown)


@router.get("", operation_id="list_collections", dependencies=[Depends(require_read)])
def list_collections(engine: EngineDep) -> CollectionList:
    generations = engine.store.generations()
    return CollectionList(collections=[
        describe(engine, stats, generations) for stats in engine.store.list_collections()
    ])


@router.post(
    "",
    operation_id="create_collection",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_write), Depends(require_json)],
    responses=error_responses(404, 409, 422),
)
def create_collection(body: CollectionIn, engine: EngineDep) -> CollectionOut:
    spec = collection_spec(
        body.name,
        engine.settings,
        engine.embedder,
        dimension=body.dimension,
        chunk_tokens=body.chunk_tokens,
        chunk_overlap=body.chunk_overlap,
        document_instruction=body.document_instruction,
        query_instruction=body.query_instruction,
        index_settings=body.index.model_dump(exclude_none=True) if body.index else None,
    )
    return describe(engine, CollectionStats(engine.store.create_collection(spec), 0, 0, {}))


@router.get(
    "/{name}",
    operation_id="get_collection",
    dependencies=[Depends(require_read)],
    responses=error_responses(404),
)
def get_collection(name: str, engine: EngineDep) -> CollectionOut:
    """The collection by its name or an alias's."""
    found = engine.store.list_collections(name)  # one collection's rows, not every one's
    if not found and engine.store.aliases(name):
        found = engine.store.list_collections(engine.store.get_collection(name).name)
    if not found:
        raise CollectionNotFound(name)
    return describe(engine, found[0])


@router.delete(
    "/{name}",
    operation_id="delete_collection",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(require_write)],
    responses=error_responses(404, 409, 422),
)
def delete_collection(name: str, engine: EngineDep) -> Response:
    if name == DEFAULT_COLLECTION:
        raise InvalidInput("the default collection cannot be deleted; delete its documents instead")
    aliased = engine.store.aliases(name)
    if aliased:
        raise InvalidInput(
            f"{name!r} is an alias of collection {aliased[0].collection!r}: delete the alias "
            f"(DELETE /v1/aliases/{name}) or the collection by its own name"
        )
    info = engine.store.get_collection(name)
    engine.store.delete_collection(name)
    engine.indexes.forget_collection(info)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# One duplicates scan per process at a time: each reads every document of a collection.
_SCANNING = threading.Lock()


@router.post(
    "/{name}/duplicates",
    operation_id="find_duplicates",
    dependencies=[Depends(require_write), Depends(require_json)],
    responses={200: {"content": {"application/x-ndjson": {}}},
               **error_responses(404, 415, 422, 429)},
)
def list_duplicates(name: str, body: DuplicatesIn, engine: EngineDep) -> StreamingResponse:
    """The collection's exact copies, translation sets and near-duplicates, streamed as JSON
    lines `{"kind", "score", "documents": [{"id", "lang", "title"}]}` as they are found, then
    `{"done": true, "groups": n}`. It reads every document, so it needs the write key (it
    lists every id, whatever a search's filter would show), and a server runs one at a time
    (429 while one runs)."""
    current = engine.indexes.named(name)
    if not _SCANNING.acquire(blocking=False):
        raise Busy("a duplicates scan is running on this server; try again when it ends")
    release = _once(_SCANNING.release)

    def lines() -> Iterator[str]:
        try:
            found = 0
            for group in find_duplicates(
                engine.store, current, tuple(body.kinds), body.near_cosine
            ):
                found += 1
                yield json.dumps(group.as_json(), ensure_ascii=False) + "\n"
            yield json.dumps({"done": True, "groups": found}) + "\n"
        finally:
            release()

    stream = lines()
    weakref.finalize(stream, release)  # a client gone before the first line: never started
    return StreamingResponse(stream, media_type="application/x-ndjson")


def _once(action: Callable[[], None]) -> Callable[[], None]:
    """`action`, done the first time the result is called and never again."""
    guard = threading.Lock()
    done: list[bool] = []

    def at_most_once() -> None:
        with guard:
            if done:
                return
            done.append(True)
        action()

    return at_most_once
