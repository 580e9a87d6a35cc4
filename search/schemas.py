"""Pydantic models of what goes in and out, shared by the REST API and the CLI's `--json`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

LANGUAGE_PATTERN = r"^([a-z]{2,3}(-[A-Za-z0-9]{2,8})*|und)$"


def describe_validation_error(error: ValidationError, prefix: str = "") -> str:
    """One line naming each bad field (with `prefix`, e.g. an env variable prefix) and why."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "document"
        if prefix:
            where = prefix + where.upper()
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


class DocumentIn(BaseModel):
    """One document to ingest; unknown fields are refused so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, min_length=1, max_length=512, description="Your stable id.")
    text: str = Field(description="The document's text, in any language.")
    title: str | None = Field(None, max_length=2000)
    lang: str | None = Field(
        None, pattern=LANGUAGE_PATTERN, description="ISO 639-1 code; detected when absent."
    )
    url: str | None = Field(None, max_length=4000)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty")
        if "\x00" in value:
            raise ValueError("text contains NUL characters (binary data?)")
        return value


class Snippet(BaseModel):
    """The best-matching chunk: `text` is the document's text from `start` to `end`."""

    text: str
    start: int
    end: int


class SearchResult(BaseModel):
    id: str
    title: str | None
    lang: str
    url: str | None
    metadata: dict[str, Any]
    score: float
    snippet: Snippet


class SearchResponse(BaseModel):
    query_language: str
    took_ms: float
    results: list[SearchResult]


class SearchRequest(BaseModel):
    """A question; results cross languages unless `languages` narrows them."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4000, description="The question, any language.")
    k: int = Field(10, ge=1, le=100, description="How many documents to return.")
    languages: list[str] | None = Field(
        None, description="Only documents in these languages (ISO 639-1)."
    )
    filter: dict[str, Any] | None = Field(
        None, description="Metadata equality filter: every key must equal the value."
    )
    instruction: str | None = Field(
        None, max_length=2000, description="Task instruction for instruction-aware models."
    )
    nprobe: int | None = Field(None, ge=1, le=65536, description="IVF lists to visit.")

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query is empty")
        return value
