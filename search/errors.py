"""Domain errors: each names what went wrong and what to do; the API maps them to 4xx."""

from __future__ import annotations


class XlsearchError(Exception):
    """Base class of errors the caller can fix; `code` is stable, `status` the HTTP status."""

    code = "error"
    status = 400


class InvalidInput(XlsearchError):
    code = "invalid_input"
    status = 422


class InvalidQuery(InvalidInput):
    code = "invalid_query"


class CollectionNotFound(XlsearchError):
    code = "collection_not_found"
    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(
            f"collection {name!r} does not exist; "
            "list them with `xlsearch collections` or GET /v1/collections"
        )


class AliasNotFound(XlsearchError):
    code = "alias_not_found"
    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"alias {name!r} does not exist; list them with GET /v1/aliases")


class CollectionDeleted(CollectionNotFound):
    """The collection was deleted while documents were being written to it."""

    def __init__(self) -> None:
        XlsearchError.__init__(self, "the collection was deleted while documents were being added")


class CollectionExists(XlsearchError):
    code = "collection_exists"
    status = 409


class DocumentNotFound(XlsearchError):
    code = "document_not_found"
    status = 404


class ModelMismatch(XlsearchError):
    code = "model_mismatch"
    status = 409


class GenerationChanged(ModelMismatch):
    """The collection switched to another generation while this write was embedded for the
    one before; the write is not stored, and is safe to send again."""


class MigrationConflict(XlsearchError):
    """A migration cannot start, switch back or go on in the collection's present state."""

    code = "migration_conflict"
    status = 409


class MigrationNotFound(XlsearchError):
    code = "migration_not_found"
    status = 404


class Busy(XlsearchError):
    """The server does one of these at a time and one is running; retry when it ends."""

    code = "busy"
    status = 429


class EmbedderUnavailable(XlsearchError):
    """The embedding backend cannot be reached or failed; retrying later may help."""

    code = "embedder_unavailable"
    status = 503


class Forbidden(XlsearchError):
    code = "forbidden"
    status = 403


class UnsupportedMedia(XlsearchError):
    code = "unsupported_media"
    status = 415


class RequestTooLarge(XlsearchError):
    """More work in one request than the server takes at once; split it."""

    code = "request_too_large"
    status = 413


class StorageUnavailable(XlsearchError):
    """The data folder or database cannot be used: missing, unwritable, unreachable, damaged."""

    code = "storage_unavailable"
    status = 503


class JobNotFound(XlsearchError):
    code = "job_not_found"
    status = 404

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} does not exist; list jobs with GET /v1/jobs")


class Unauthorized(XlsearchError):
    code = "unauthorized"
    status = 401


class PageMissing(XlsearchError):
    """The web page's files are not installed beside the code."""

    code = "not_found"
    status = 404
