"""Bulk jobs: from uploaded files (JSONL, text, Markdown, HTML, ZIP) or a server-side path."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from search.api.deps import EngineDep, JobsDep
from search.api.models import JobAccepted, JobList, JobOut, JobPathIn, error_responses
from search.api.security import require_read, require_write
from search.api.uploads import resolve_server_path, save_uploads, submit_upload
from search.errors import InvalidInput, UnsupportedMedia
from search.schemas import describe_validation_error
from search.store.jobs import JobStatus

router = APIRouter(tags=["jobs"])

UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {"type": "array", "items": {"type": "string", "format": "binary"}}
                },
                "required": ["file"],
            }
        },
        "application/json": {"schema": JobPathIn.model_json_schema()},
    },
}


@router.post(
    "/v1/collections/{name}/jobs",
    operation_id="create_job",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require_write)],
    openapi_extra={"requestBody": UPLOAD_BODY},
    responses=error_responses(403, 404, 409, 413, 415, 422),
)
async def create_job(name: str, request: Request, engine: EngineDep, jobs: JobsDep) -> JobAccepted:
    """Upload files as multipart field `file` (repeatable), or send `{"path": ...}` for a
    file or folder under the server's allowed roots. Uploads are streamed to disk; a file's
    document id is its name, a ZIP entry's its path in the archive."""
    collection = engine.writable(name)
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        folder = await save_uploads(engine.settings, content_type, request.stream())
        return JobAccepted(job_id=submit_upload(jobs, collection.id, folder, 0))
    if content_type.startswith("application/json"):
        try:
            body = JobPathIn.model_validate_json(await request.body())
        except ValidationError as exc:
            raise InvalidInput(describe_validation_error(exc)) from None
        path = resolve_server_path(body.path, engine.settings.allowed_roots)
        return JobAccepted(
            job_id=jobs.submit(collection.id, {"path": str(path), "owned": False}, 0)
        )
    raise UnsupportedMedia("send multipart/form-data files or a JSON body with 'path'")


@router.get("/v1/jobs", operation_id="list_jobs", dependencies=[Depends(require_read)])
def list_jobs(
    jobs: JobsDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JobList:
    """Newest first."""
    return JobList(jobs=[JobOut.model_validate(job) for job in jobs.recent(status, limit)])


@router.get(
    "/v1/jobs/{job_id}",
    operation_id="get_job",
    dependencies=[Depends(require_read)],
    responses=error_responses(404),
)
def get_job(job_id: str, jobs: JobsDep) -> JobOut:
    return JobOut.model_validate(jobs.get(job_id))


@router.delete(
    "/v1/jobs/{job_id}",
    operation_id="cancel_job",
    dependencies=[Depends(require_write)],
    responses=error_responses(404),
)
def cancel_job(job_id: str, jobs: JobsDep) -> JSONResponse:
    """Cancel: a queued job at once, a running one after its current batch."""
    cancelled = jobs.cancel(job_id)
    if cancelled.status == "cancelled":
        cancelled.discard_upload()  # a running job's worker discards it when it stops
    job = JobOut.model_validate(cancelled)
    return JSONResponse(job.model_dump(mode="json"), status_code=202)
