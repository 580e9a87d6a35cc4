"""Request and response bodies of the REST API (beyond the shared search/document schemas)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from search.duplicates import KINDS, NEAR_COSINE, Kind
from search.schemas import DocumentIn, Strict, Text, Translation
from search.store.jobs import JobStatus
from search.store.records import AliasInfo, CollectionStats, GenerationInfo


class ErrorDetail(BaseModel):
    code: str = Field(examples=["collection_not_found"])
    message: str = Field(examples=["collection 'nope' does not exist"])


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer has this shape."""

    error: ErrorDetail


class IndexSettingsIn(Strict):
    """A collection's index; unset fields follow the engine's policy (README, "Indexes")."""

    type: Literal["auto", "flat", "ivf", "ivf_sq8", "ivf_pq"] = Field(
        "auto",
        description="auto: exact search below XLSEARCH_IVF_MIN_VECTORS, ivf above; flat: "
        "always exact; ivf, ivf_sq8 (4x smaller), ivf_pq (16x smaller, less exact): IVF as "
        "soon as there are enough vectors to train it.",
    )
    nlist: int | None = Field(None, ge=1, le=65536, description="IVF lists; default ≈ 4·√N.")
    nprobe: int | None = Field(
        None, ge=1, le=65536, description="IVF lists searched per query; default measured."
    )


class CollectionIn(Strict):
    name: Text = Field(examples=["news"], description="1-64 letters, digits, '_', '-', '.'")
    dimension: int | None = Field(
        None, ge=32, description="Matryoshka dimension; default the model's."
    )
    chunk_tokens: int | None = Field(None, ge=16, description="Most tokens per chunk.")
    chunk_overlap: int | None = Field(
        None, ge=0, description="Tokens shared by neighbouring chunks."
    )
    document_instruction: Text | None = Field(None, max_length=2000)
    query_instruction: Text | None = Field(None, max_length=2000)
    index: IndexSettingsIn | None = None


class MigrationIn(Strict):
    """How the collection's new generation embeds; what is left out stays as it is (a new
    model's dimension defaults to its full one)."""

    model: Text | None = Field(
        None, min_length=1, max_length=512,
        description="The model's name as its processes report it (GET /v1/models).",
    )
    dimension: int | None = Field(None, ge=32, le=65536, description="Matryoshka dimension.")
    chunk_tokens: int | None = Field(
        None, ge=16, le=1_000_000, description="Most tokens per chunk; documents are chunked "
        "again only when this or chunk_overlap changes.",
    )
    chunk_overlap: int | None = Field(None, ge=0, le=1_000_000)
    document_instruction: Text | None = Field(None, max_length=2000)
    query_instruction: Text | None = Field(None, max_length=2000)

    def changes(self) -> dict[str, Any]:
        """The fields given (an instruction given as null resets it to the model's)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class GenerationOut(BaseModel):
    """One generation of a collection: a migration's work, by its number."""

    generation: int
    state: str = Field(description="building, active, retired (kept for a rollback) or "
                       "abandoned")
    model: str
    dimension: int = Field(description="0 until the worker with that model has started.")
    chunk_tokens: int
    chunk_overlap: int
    document_instruction: str | None
    query_instruction: str | None
    job_id: str | None = Field(description="The job building it, while it is built.")
    created_at: datetime
    switched_at: datetime | None = Field(description="When it last became active.")
    retired_at: datetime | None = Field(description="When a switch left it.")
    kept_until: datetime | None = Field(
        description="When a retired generation is deleted (then no rollback to it)."
    )
    searched_here: bool = Field(description="Whether this process answers searches from it.")

    @classmethod
    def of(cls, info: GenerationInfo, keep_s: float, searched_here: bool) -> GenerationOut:
        kept_until = None
        if info.state == "retired" and info.retired_at is not None:
            kept_until = info.retired_at + timedelta(seconds=keep_s)
        return cls.model_validate({
            **asdict(info), "generation": info.number, "kept_until": kept_until,
            "searched_here": searched_here,
        })


class MigrationAccepted(BaseModel):
    generation: GenerationOut
    job_id: str = Field(description="Follow it at GET /v1/jobs/{job_id}; cancel it there.")


class MigrationList(BaseModel):
    migrations: list[GenerationOut] = Field(description="Every generation kept, oldest first.")


class CollectionOut(BaseModel):
    name: str
    model: str
    dimension: int
    chunk_tokens: int
    chunk_overlap: int
    document_instruction: str | None
    query_instruction: str | None
    generation: int = Field(description="The active generation: what searches use.")
    generations: list[GenerationOut] = Field(
        description="Every generation kept (see …/migrations), and which this process searches."
    )
    index: dict[str, Any] = Field(
        description="`settings` as created; the index this process holds (kind, nlist, "
        "nprobe, count) once it has loaded it."
    )
    documents: int
    chunks: int
    languages: dict[str, int] = Field(description="Documents per detected or given language.")
    translations: dict[str, int] = Field(
        description="`sets`: translation sets of two or more copies; `documents`: the "
        "documents in them; `unlinked`: documents not linked yet (linked within a second "
        "or so of being written)."
    )

    @classmethod
    def build(
        cls, stats: CollectionStats, index: dict[str, Any], generations: list[GenerationOut]
    ) -> CollectionOut:
        """The collection's settings by name (its row id is not shown), its counts, and its
        index: the settings it was created with and what this process holds."""
        return cls.model_validate(
            {
                **asdict(stats.info),
                "generations": generations,
                "index": {"settings": stats.info.index_settings, **index},
                "documents": stats.documents,
                "chunks": stats.chunks,
                "languages": stats.languages,
                "translations": {
                    "sets": stats.translation_sets,
                    "documents": stats.translated_documents,
                    "unlinked": stats.unlinked_documents,
                },
            }
        )


class CollectionList(BaseModel):
    collections: list[CollectionOut]


class DocumentsIn(Strict):
    documents: list[DocumentIn] = Field(min_length=1, max_length=10_000)
    wait: bool = Field(False, description="Answer once the documents are searchable.")


class DocumentResult(BaseModel):
    id: str
    status: Literal["created", "replaced", "updated", "unchanged", "failed"]
    chunks: int
    error: str | None = Field(
        None, description="Why the document was not stored, when `status` is `failed`."
    )


class DocumentsDone(BaseModel):
    results: list[DocumentResult]


class JobAccepted(BaseModel):
    job_id: str


class JobPathIn(Strict):
    path: Text = Field(description="A file or folder under one of the server's allowed roots.")


class JobOut(BaseModel):
    """A job as the API shows it (built from `JobInfo`'s attributes)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    collection: str
    status: JobStatus
    total: int
    processed: int
    failed: int
    errors: list[dict[str, Any]]
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None = Field(None, description="The worker holding the job while it runs.")
    model: str | None = Field(
        None, description="The model its worker embeds with (a migration's); other jobs need "
        "their collection's, and wait for a worker that has it."
    )
    eta_s: float | None = Field(
        None, description="Seconds left at the rate so far, while it runs."
    )


class JobList(BaseModel):
    jobs: list[JobOut]


class AliasIn(Strict):
    collection: str = Field(min_length=1, max_length=128, description="The collection it names.")


class AliasOut(BaseModel):
    alias: str
    collection: str = Field(description="The collection the alias names now.")
    updated_at: datetime = Field(description="When it was last pointed at a collection.")

    @classmethod
    def of(cls, info: AliasInfo) -> AliasOut:
        return cls(alias=info.name, collection=info.collection, updated_at=info.updated_at)


class AliasList(BaseModel):
    aliases: list[AliasOut]


class DuplicatesIn(Strict):
    """What `POST …/duplicates` lists, and how alike near-duplicates must be."""

    kinds: list[Kind] = Field(
        default_factory=lambda: list(KINDS), min_length=1,
        description="exact (the same text), translations (translation sets) and near "
        "(near-duplicates in one language).",
    )
    near_cosine: float = Field(
        NEAR_COSINE, ge=0.5, le=1.0,
        description="Cosine of their mean vectors from which two documents in one language "
        "are near-duplicates.",
    )


class DocumentOut(BaseModel):
    id: str
    title: str | None
    url: str | None
    lang: str
    metadata: dict[str, Any]
    text: str
    parts: list[dict[str, Any]] | None = Field(
        None, description="Where each page, slide or section begins in `text`, if known."
    )
    translations: list[Translation] | None = Field(
        None, description="Its translations (the other copies of its translation set), "
        "oldest first; null while it is not linked yet (about a second after a write)."
    )


class EmbeddingsIn(BaseModel):
    """OpenAI's embeddings request, plus the seed's `dim` and xlsearch's `input_type`."""

    # OpenAI clients send fields like `user`; types are not coerced.
    model_config = ConfigDict(extra="ignore", strict=True)

    input: Text | list[Text] = Field(examples=["Wie hoch ist der Eiffelturm?"])
    model: Text | None = None
    dimensions: int | None = Field(None, ge=1)
    dim: int | None = Field(None, ge=1, description="Alias of `dimensions`.")
    encoding_format: Literal["float", "base64"] = "float"
    input_type: Literal["query", "document"] = "document"
    instruction: Text | None = Field(None, max_length=2000)


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    owned_by: str = "xlsearch"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting the error body for these statuses."""
    return {status: {"model": ErrorBody} for status in statuses}
