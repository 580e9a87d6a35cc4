"""Pydantic models of what goes in and out, shared by the REST API and the CLI's `--json`."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from typing_extensions import TypedDict

from search.filters import FilterError, compile_filter
from search.languages import normalise_language
from search.lexical_query import parse_query

METADATA_DEPTH = 8  # nesting levels of metadata objects and lists
METADATA_ITEMS = 1000  # keys and list items in one document's metadata, all levels together
METADATA_BYTES = 65536  # its size as JSON: it travels with every search result


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


def clean_text(value: str) -> str:
    """`value` if it can be stored and sent back as UTF-8 text: no lone surrogates (JSON's
    `"\\ud800"` decodes to one, and it cannot be encoded), no NUL characters."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"contains a lone surrogate (U+{ord(value[exc.start]):04X}) at character "
            f"{exc.start}; send valid Unicode text"
        ) from None
    if "\x00" in value:
        raise ValueError(f"contains a NUL character at character {value.index(chr(0))}")
    return value


def clean_metadata(value: dict[str, Any]) -> dict[str, Any]:
    """Metadata that survives a round trip through JSON unchanged: clean strings as keys and
    values, finite numbers, bounded nesting and size."""
    items = 0

    def check(node: Any, where: str, depth: int) -> None:
        nonlocal items
        if depth > METADATA_DEPTH:
            raise ValueError(f"{where}: nested deeper than {METADATA_DEPTH} levels")
        if isinstance(node, str):
            _clean_at(node, where)
        elif isinstance(node, float) and not math.isfinite(node):
            raise ValueError(f"{where}: {node} is not a JSON number; use a finite number")
        elif isinstance(node, dict | list):
            items += len(node)
            if items > METADATA_ITEMS:
                raise ValueError(f"more than {METADATA_ITEMS} keys and items; store less")
            pairs = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in pairs:
                if isinstance(key, str):
                    _clean_at(key, f"{where} key {key[:40]!r}")
                inner = f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]"
                check(child, inner, depth + 1)
        elif node is not None and not isinstance(node, bool | int | float):
            raise ValueError(f"{where}: {type(node).__name__} is not a JSON value")

    check(value, "metadata", 0)
    if len(json.dumps(value, ensure_ascii=False).encode()) > METADATA_BYTES:
        raise ValueError(f"metadata is larger than {METADATA_BYTES} bytes as JSON; store less")
    return value


def _clean_at(value: str, where: str) -> None:
    """`clean_text`, its message prefixed with where in the metadata the string is."""
    try:
        clean_text(value)
    except ValueError as exc:
        raise ValueError(f"{where} {exc}") from None


def _clean_if_text(value: Any) -> Any:
    """Checked before pydantic's own string checks, which refuse a lone surrogate with a
    message that does not say what is wrong; other types get pydantic's type error."""
    return clean_text(value) if isinstance(value, str) else value


Text = Annotated[str, BeforeValidator(_clean_if_text)]
Language = Annotated[str, BeforeValidator(_clean_if_text), AfterValidator(normalise_language)]
Metadata = Annotated[dict[str, Any], AfterValidator(clean_metadata)]


class Strict(BaseModel):
    """A request body: unknown fields are refused so typos do not pass silently, and types
    are not coerced (`"k": true` is not 1, `"wait": "yes"` is not true)."""

    model_config = ConfigDict(extra="forbid", strict=True)


PART_KINDS = ("page", "slide", "section")
MAX_PARTS = 10_000  # pages, slides or sections of one document
SECTION_LIMIT = 200  # characters of a section's name


class Part(Strict):
    """Where a page, slide or section of a document begins in its `text`: the readers of
    PDF, PowerPoint, Word, EPUB, HTML and Markdown files set these, so that a search result
    can say where in the file it is (its `locator`)."""

    start: int = Field(ge=0, description="Character offset in `text` where the part begins.")
    page: int | None = Field(None, ge=1, description="Page number (PDF).")
    slide: int | None = Field(None, ge=1, description="Slide number (PowerPoint).")
    section: Text | None = Field(
        None, min_length=1, max_length=SECTION_LIMIT, description="Heading of the section."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Part:
        if sum(getattr(self, kind) is not None for kind in PART_KINDS) != 1:
            raise ValueError("a part has exactly one of page, slide or section")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in PART_KINDS if getattr(self, kind) is not None)


class DocumentIn(Strict):
    """One document to ingest."""

    id: Text | None = Field(None, min_length=1, max_length=512, description="Your stable id.")
    text: Text = Field(description="The document's text, in any language.")
    title: Text | None = Field(None, max_length=2000)
    lang: Language | None = Field(
        None, max_length=16, description="ISO 639-1 code (any case); detected when absent."
    )
    url: Text | None = Field(None, max_length=4000)
    metadata: Metadata = Field(default_factory=dict)
    parts: list[Part] | None = Field(
        None,
        max_length=MAX_PARTS,
        description="Where each page, slide or section begins in `text`, in order, all of "
        "one kind; search results then carry a `locator`.",
    )

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty")
        return value

    @model_validator(mode="after")
    def _parts_in_order(self) -> DocumentIn:
        if not self.parts:
            return self
        kinds = {part.kind for part in self.parts}
        if len(kinds) > 1:
            raise ValueError(f"parts mix {' and '.join(sorted(kinds))}; use one kind")
        starts = [part.start for part in self.parts]
        if any(a >= b for a, b in zip(starts, starts[1:], strict=False)):
            raise ValueError("parts must begin at increasing offsets")
        if starts[-1] >= len(self.text):
            raise ValueError(
                f"a part begins at {starts[-1]}, past the end of the text ({len(self.text)} "
                "characters)"
            )
        return self


class Snippet(BaseModel):
    """The best-matching chunk: `text` is the document's text from `start` to `end`."""

    text: str
    start: int
    end: int
    highlights: list[tuple[int, int]] = Field(
        default_factory=list,
        description="[start, end) character offsets in `text` of the query's words that "
        "count for this result (none in `dense` mode).",
    )


class GroupMember(BaseModel):
    """Another document of a result's group, in rank order."""

    id: str
    title: str | None
    lang: str
    score: float


class Group(BaseModel):
    value: Any = Field(description="The group's value of `group_by` (null: documents without it).")
    more: list[GroupMember] = Field(
        description="The group's next best documents among those the search read, up to "
        "`group_size` - 1."
    )


class Translation(TypedDict):
    """Another copy of a result in its translation set: its id, language and title, and its
    own score where the search read it (null when it did not match as well). A plain dict:
    a page of results may name a hundred copies."""

    id: str
    lang: str
    title: str | None
    score: float | None


class SearchResult(BaseModel):
    id: str
    title: str | None
    lang: str
    url: str | None
    metadata: dict[str, Any]
    locator: dict[str, int | str] | None = Field(
        None,
        description="Where the snippet is in the file: `{\"page\": 12}`, `{\"slide\": 3}` or "
        "`{\"section\": \"2.3 Liability\"}`, with `to` naming the last page, slide or "
        "section when it runs on into others; null for documents without parts.",
    )
    score: float = Field(description="What the results are ordered by (the fused score in "
                         "`hybrid` mode).")
    dense_score: float | None = Field(
        None, description="Cosine similarity of the question and the snippet's chunk."
    )
    dense_rank: int | None = Field(None, description="Rank by `dense_score` alone (1 = best).")
    lexical_score: float | None = Field(
        None,
        description="Lexical evidence, 0..1: the share of the question's attainable BM25 "
        "weight that the chunk matches (in `hybrid` mode only words that count across its "
        "language: all words when it is in the question's language, else identifiers).",
    )
    lexical_rank: int | None = Field(
        None, description="Rank by `lexical_score` alone, among results with any (1 = best)."
    )
    snippet: Snippet
    group: Group | None = Field(
        None, description="With `group_by`: the value this result's group shares, and more "
        "of its documents."
    )
    translations: list[Translation] | None = Field(
        None, description="With `collapse: translations`: the result's other copies (its "
        "translations), best first; [] when it has none."
    )


class SearchResponse(BaseModel):
    query_language: str
    took_ms: float
    results: list[SearchResult]
    next_offset: int | None = Field(
        None, description="The `offset` of the next page; null when there are no more results."
    )


MAX_RESULTS = 1000  # how deep paging reaches (offset + k)
SearchMode = Literal["dense", "lexical", "hybrid"]
DEFAULT_MODE: SearchMode = "hybrid"


Collapse = Literal["translations", "none"]
COLLAPSE_DESCRIPTION = (
    "`translations` (the default without `group_by`): translated copies of a document are one "
    "result, the best-scoring copy (or the first in `prefer_languages`) shown with the others "
    "in `translations`; `none`: every copy is a result of its own."
)
PREFER_DESCRIPTION = (
    "With collapse: the copy shown for a translation set is the best one in the first of "
    "these languages that has one among the matches (the set keeps its place)."
)


def _check_page(offset: int, k: int) -> None:
    if offset + k > MAX_RESULTS:
        raise ValueError(
            f"offset + k is {offset + k}; pages reach the first {MAX_RESULTS} results only: "
            "narrow the search with languages or a filter"
        )


def _compiled_filter(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """`value` if it is a metadata filter that compiles; ValueError says why not."""
    if value is not None:
        try:
            compile_filter(value)
        except FilterError as exc:
            raise ValueError(str(exc)) from None
    return value


class SimilarRequest(Strict):
    """What a "more like this" search may narrow: how many, which languages, which metadata."""

    k: int = Field(10, ge=1, le=100, description="How many documents to return.")
    languages: list[Language] | None = Field(
        None, max_length=200, description="Only documents in these languages."
    )
    filter: Metadata | None = Field(None, description="Metadata filter, as in a search.")
    nprobe: int | None = Field(None, ge=1, le=65536, description="IVF lists to visit.")
    offset: int = Field(0, ge=0, description="Results to skip (paging).")
    collapse: Collapse = Field(
        "translations", description="`translations` (the default): leave out the document's "
        "own translations too, and show each other translation set as one result; `none`: "
        "every copy is a result of its own."
    )
    prefer_languages: list[Language] | None = Field(
        None, max_length=200, description=PREFER_DESCRIPTION
    )

    @model_validator(mode="after")
    def _page_in_reach(self) -> SimilarRequest:
        _check_page(self.offset, self.k)
        return self

    @property
    def collapsing(self) -> bool:
        return self.collapse == "translations"

    @field_validator("filter")
    @classmethod
    def _filter_compiles(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _compiled_filter(value)


class SearchRequest(Strict):
    """A question; results cross languages unless `languages` narrows them."""

    query: Text = Field(min_length=1, max_length=4000, description="The question, any language.")
    k: int = Field(10, ge=1, le=100, description="How many documents to return.")
    languages: list[Language] | None = Field(
        None,
        max_length=200,
        description="Only documents in these languages (ISO 639-1, any case; `zh` also "
        "takes `zh-tw`).",
    )
    filter: Metadata | None = Field(
        None,
        description="Metadata filter: `{\"key\": value}` is equality; operators $eq $ne $gt "
        "$gte $lt $lte $in $nin $exists per key and $and $or $not over filters.",
    )
    instruction: Text | None = Field(
        None, max_length=2000, description="Task instruction for instruction-aware models."
    )
    nprobe: int | None = Field(None, ge=1, le=65536, description="IVF lists to visit.")
    offset: int = Field(
        0, ge=0, description=f"Results to skip (paging); offset + k is at most {MAX_RESULTS}."
    )
    group_by: str | None = Field(
        None,
        max_length=200,
        pattern=r"^(lang|metadata(\.[^.]+)+)$",
        description="One result per value of this field (`lang`, or `metadata.KEY`, dots "
        "reaching into nested objects), the group's best document first.",
    )
    group_size: int | None = Field(
        None, ge=1, le=10, description="Documents per group with `group_by` (default 3)."
    )
    collapse: Collapse | None = Field(None, description=COLLAPSE_DESCRIPTION)
    prefer_languages: list[Language] | None = Field(
        None, max_length=200, description=PREFER_DESCRIPTION
    )
    mode: SearchMode = Field(
        DEFAULT_MODE,
        description="`dense` (the embedding model), `lexical` (BM25 over words; \"quoted "
        "phrases\" must occur) or `hybrid` (dense, with lexical evidence lifting results "
        "that match the question's words or identifiers).",
    )

    @model_validator(mode="after")
    def _page_in_reach(self) -> SearchRequest:
        _check_page(self.offset, self.k)
        return self

    @model_validator(mode="after")
    def _group_size_with_group_by(self) -> SearchRequest:
        if self.group_size is not None and self.group_by is None:
            raise ValueError("group_size needs group_by: name the field to group by")
        if self.group_by is not None and self.collapse == "translations":
            raise ValueError("collapse and group_by do not combine: a result is one "
                             "translation set or one group; leave one of them out")
        return self

    @property
    def collapsing(self) -> bool:
        """Whether translated copies are one result: the default, unless grouping."""
        return (self.collapse or ("none" if self.group_by else "translations")) == "translations"

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query is empty")
        return value

    @model_validator(mode="after")
    def _query_readable(self) -> SearchRequest:
        if self.mode != "dense":
            query = parse_query(self.query)  # a QuerySyntaxError is a ValueError
            if self.mode == "lexical" and not query.words:
                raise ValueError(
                    "query has no words to match in lexical mode; use mode dense or hybrid"
                )
        return self

    @field_validator("filter")
    @classmethod
    def _filter_compiles(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _compiled_filter(value)
