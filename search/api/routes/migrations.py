"""Migrations: re-embed a collection with another model, dimension, chunking or prompt into a
new generation while searches go on, switch to it, and switch back (search.store.generations;
the work is a job, indexer.migration)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from search.api.deps import EngineDep, require_json
from search.api.models import (
    GenerationOut,
    MigrationAccepted,
    MigrationIn,
    MigrationList,
    error_responses,
)
from search.api.security import require_read, require_write
from search.collections import migration_target
from search.engine import Engine
from search.errors import MigrationConflict
from search.store.records import CollectionInfo, GenerationInfo

router = APIRouter(prefix="/v1/collections/{name}/migrations", tags=["migrations"])
GenerationNumber = Annotated[int, Path(ge=1, le=2**31 - 1, description="Its generation.")]


def generations_out(
    engine: Engine, collection: CollectionInfo, generations: list[GenerationInfo]
) -> list[GenerationOut]:
    """The collection's generations as the API shows them, with the one this process
    searches marked."""
    kept = [g for g in generations if g.collection_id == collection.id]
    searched = engine.indexes.served(collection, kept).generation
    keep_s = engine.settings.generation_keep_s
    return [GenerationOut.of(g, keep_s, g.number == searched) for g in kept]


@router.post(
    "",
    operation_id="start_migration",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require_write), Depends(require_json)],
    responses=error_responses(404, 409, 415, 422),
)
def start_migration(name: str, body: MigrationIn, engine: EngineDep) -> MigrationAccepted:
    """Build a new generation of the collection from the chunk texts it holds, then switch
    to it. Searches keep using the active generation meanwhile, and documents written
    meanwhile are added to both. The job needs a worker with the new model."""
    collection = engine.store.get_collection(name)
    target = migration_target(collection, body.changes(), engine.embedder)
    generation = engine.store.start_migration(collection.id, target)
    return _accepted(engine, collection, generation)


@router.get("", operation_id="list_migrations", dependencies=[Depends(require_read)],
            responses=error_responses(404))
def list_migrations(name: str, engine: EngineDep) -> MigrationList:
    collection = engine.store.get_collection(name)
    generations = engine.store.generations(collection.id)
    return MigrationList(migrations=generations_out(engine, collection, generations))


@router.get("/{generation}", operation_id="get_migration", dependencies=[Depends(require_read)],
            responses=error_responses(404))
def get_migration(name: str, generation: GenerationNumber, engine: EngineDep) -> GenerationOut:
    """The migration that built this generation (its number)."""
    collection = engine.store.get_collection(name)
    found = engine.store.generation(collection.id, generation)
    kept = [g for g in engine.store.generations(collection.id) if g.number != found.number]
    return next(g for g in generations_out(engine, collection, [*kept, found])
                if g.generation == generation)


@router.post(
    "/{generation}/rollback",
    operation_id="rollback_migration",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require_write)],
    responses=error_responses(404, 409),
)
def rollback_migration(
    name: str, generation: GenerationNumber, engine: EngineDep
) -> MigrationAccepted:
    """Undo the last switch, the one to this generation: switch back to the generation it
    left (while that is kept). A job adds the documents written since, with that
    generation's model, then switches."""
    collection = engine.store.get_collection(name)
    if generation != collection.generation:
        engine.store.generation(collection.id, generation)  # 404 for one that never was
        raise MigrationConflict(
            f"generation {generation} is not the active one (generation "
            f"{collection.generation} is): only the last switch can be rolled back"
        )
    return _accepted(engine, collection, engine.store.start_rollback(collection.id))


def _accepted(
    engine: Engine, collection: CollectionInfo, generation: GenerationInfo
) -> MigrationAccepted:
    assert generation.job_id is not None  # a building generation has its job
    shown = generations_out(engine, collection, engine.store.generations(collection.id))
    return MigrationAccepted(
        generation=next(g for g in shown if g.generation == generation.number),
        job_id=generation.job_id,
    )
