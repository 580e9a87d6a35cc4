"""Documents: add (as a job, or at once with `wait`), show, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import JSONResponse

from search.api.deps import EngineDep, IngestionDep, JobsDep, require_json
from search.api.models import (
    DocumentOut,
    DocumentResult,
    DocumentsDone,
    DocumentsIn,
    JobAccepted,
    error_responses,
)
from search.api.security import require_read, require_write
from search.api.uploads import save_documents, submit_upload
from search.errors import DocumentNotFound, RequestTooLarge
from search.schemas import (
    PREFER_DESCRIPTION,
    Collapse,
    SearchResponse,
    SimilarRequest,
    Translation,
)

router = APIRouter(prefix="/v1/collections/{name}/documents", tags=["documents"])


@router.post(
    "",
    operation_id="add_documents",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require_write), Depends(require_json)],
    responses={200: {"model": DocumentsDone}, **error_responses(404, 409, 413, 415, 422)},
)
def add_documents(
    name: str, body: DocumentsIn, engine: EngineDep, jobs: JobsDep, ingestion: IngestionDep
) -> JSONResponse:
    """Queue the documents as a job (202 with its id), or with `wait: true` store them now
    and answer 200 once they are searchable, with each document's outcome (`failed` with
    the reason for one the database refused; the others are stored). Same id again
    replaces; same text is a no-op."""
    collection = engine.writable(name)
    _check_sizes(body, engine.settings.max_document_bytes)
    if body.wait:
        outcomes = ingestion.ingest_documents(collection, body.documents)
        engine.refresh(collection)
        done = DocumentsDone(
            results=[
                DocumentResult(id=o.id, status=o.status, chunks=o.chunks, error=o.error)
                for o in outcomes
            ]
        )
        return JSONResponse(done.model_dump(), status_code=status.HTTP_200_OK)
    folder = save_documents(engine.settings.upload_dir, body.documents)
    job_id = submit_upload(jobs, collection.id, folder, len(body.documents))
    return JSONResponse(JobAccepted(job_id=job_id).model_dump(), status_code=202)


def _check_sizes(body: DocumentsIn, limit: int) -> None:
    """Refuse the request when a document is over `max_document_bytes` as a JSON line (the
    limit readers apply to a JSONL line, so a queued document is never refused later),
    naming the documents."""
    large = [
        n
        for n, doc in enumerate(body.documents)
        if len(doc.model_dump_json(exclude_none=True).encode()) > limit
    ]
    if large:
        where = ", ".join(f"documents.{n}" for n in large[:10])
        raise RequestTooLarge(
            f"{where}: larger than {limit} bytes as JSON (XLSEARCH_MAX_DOCUMENT_BYTES); "
            "split the document or raise the limit"
        )


@router.get(
    "/{doc_id:path}/similar",
    operation_id="similar_documents",
    dependencies=[Depends(require_read)],
    responses=error_responses(404, 422),
)
def similar_documents(
    name: str,
    doc_id: str,
    engine: EngineDep,
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    lang: Annotated[list[str] | None, Query(description="Only these languages.")] = None,
    offset: Annotated[int, Query(ge=0, description="Results to skip (paging).")] = 0,
    nprobe: Annotated[int | None, Query(ge=1, le=65536)] = None,
    collapse: Annotated[Collapse, Query(description="translations (the default: its own "
                                        "translations left out too) or none.")] = "translations",
    prefer: Annotated[list[str] | None, Query(description=PREFER_DESCRIPTION)] = None,
) -> SearchResponse:
    """Documents like this one in any language ("more like this"), from its stored vectors
    (nothing is embedded), itself left out; POST the same path to filter by metadata."""
    request = SimilarRequest(k=k, languages=lang or None, offset=offset, nprobe=nprobe,
                             collapse=collapse, prefer_languages=prefer or None)
    return engine.searcher.similar(name, doc_id, request)


@router.post(
    "/{doc_id:path}/similar",
    operation_id="similar_documents_filtered",
    dependencies=[Depends(require_read), Depends(require_json)],
    responses=error_responses(404, 415, 422),
)
def similar_documents_filtered(
    name: str, doc_id: str, body: SimilarRequest, engine: EngineDep
) -> SearchResponse:
    """`GET …/similar`, with `filter` and the other fields in a JSON body."""
    return engine.searcher.similar(name, doc_id, body)


@router.get(
    "/{doc_id:path}",
    operation_id="get_document",
    dependencies=[Depends(require_read)],
    responses=error_responses(404),
)
def get_document(name: str, doc_id: str, engine: EngineDep) -> DocumentOut:
    collection = engine.store.get_collection(name)
    record = engine.store.find_document(collection.id, doc_id)
    if record is None:
        raise DocumentNotFound(f"document {doc_id!r} is not in collection {name!r}")
    copies = engine.store.copies_of(collection.id, doc_id)
    return DocumentOut(
        id=record.external_id,
        title=record.title,
        url=record.url,
        lang=record.lang,
        metadata=record.metadata,
        text=record.text,
        parts=record.parts,
        translations=None if copies is None else [
            Translation(id=c.external_id, lang=c.lang, title=c.title, score=None)
            for c in copies if c.external_id != doc_id
        ],
    )


@router.delete(
    "/{doc_id:path}",
    operation_id="delete_document",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(require_write)],
    responses=error_responses(404),
)
def delete_document(name: str, doc_id: str, engine: EngineDep) -> Response:
    """Remove a document; it disappears from results within about a second."""
    collection = engine.store.get_collection(name)
    if not engine.store.delete_document(collection.id, doc_id):
        raise DocumentNotFound(f"document {doc_id!r} is not in collection {name!r}")
    engine.refresh(collection)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
