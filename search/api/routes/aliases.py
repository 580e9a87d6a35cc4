"""Aliases: second names for collections, switched atomically (`PUT` again)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response, status

from search.api.deps import EngineDep, require_json
from search.api.models import AliasIn, AliasList, AliasOut, error_responses
from search.api.security import require_read, require_write
from search.collections import check_name
from search.errors import AliasNotFound

router = APIRouter(prefix="/v1/aliases", tags=["aliases"])


@router.get("", operation_id="list_aliases", dependencies=[Depends(require_read)])
def list_aliases(engine: EngineDep) -> AliasList:
    return AliasList(aliases=[AliasOut.of(info) for info in engine.store.aliases()])


@router.get(
    "/{alias}",
    operation_id="get_alias",
    dependencies=[Depends(require_read)],
    responses=error_responses(404),
)
def get_alias(alias: str, engine: EngineDep) -> AliasOut:
    found = engine.store.aliases(alias)
    if not found:
        raise AliasNotFound(alias)
    return AliasOut.of(found[0])


@router.put(
    "/{alias}",
    operation_id="put_alias",
    dependencies=[Depends(require_write), Depends(require_json)],
    responses=error_responses(404, 409, 415, 422),
)
def put_alias(alias: str, body: AliasIn, engine: EngineDep) -> AliasOut:
    """Point the alias at a collection: created, or switched in one transaction, so that
    every search by the alias after this answer (in any process) uses that collection."""
    check_name(alias, "alias")
    return AliasOut.of(engine.store.put_alias(alias, body.collection))


@router.delete(
    "/{alias}",
    operation_id="delete_alias",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(require_write)],
    responses=error_responses(404),
)
def delete_alias(alias: str, engine: EngineDep) -> Response:
    """Remove the alias (the collection stays)."""
    engine.store.delete_alias(alias)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
