"""Collection settings: defaults from the model and the settings, and their validation."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from search.embedders import Embedder
from search.errors import CollectionExists, InvalidInput, ModelMismatch
from search.settings import Settings
from search.store.records import CollectionInfo
from search.store.repository import Store

DEFAULT_COLLECTION = "default"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def default_chunk_tokens(embedder: Embedder) -> int:
    """The model's context, capped by its family's sensible chunk size for retrieval."""
    return min(embedder.max_tokens, embedder.profile.chunk_tokens_cap)


def check_name(name: str, kind: str = "collection") -> None:
    """Refuse a collection's (or alias's) name that is not 1-64 letters, digits, _ - ."""
    if not NAME_PATTERN.fullmatch(name):  # `$` would let a trailing newline through
        raise InvalidInput(
            f"{kind} name {name!r} is invalid: use 1-64 letters, digits, '_', '-' or '.'"
        )


def collection_spec(
    name: str,
    settings: Settings,
    embedder: Embedder,
    *,
    dimension: int | None = None,
    chunk_tokens: int | None = None,
    chunk_overlap: int | None = None,
    document_instruction: str | None = None,
    query_instruction: str | None = None,
    index_settings: dict[str, Any] | None = None,
) -> CollectionInfo:
    """A validated new collection; unset values come from the settings, then the model."""
    check_name(name)
    dimension = dimension or settings.dimension or embedder.dimension
    chunk_tokens = chunk_tokens or settings.chunk_tokens or default_chunk_tokens(embedder)
    if chunk_overlap is None:
        chunk_overlap = (
            settings.chunk_overlap if settings.chunk_overlap is not None else chunk_tokens // 8
        )
    check_embedding(embedder, dimension, chunk_tokens, chunk_overlap)
    return CollectionInfo(
        id=0,
        name=name,
        model=embedder.name,
        dimension=dimension,
        chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap,
        document_instruction=document_instruction,
        query_instruction=query_instruction or settings.query_instruction,
        index_settings=index_settings or {},
    )


def check_embedding(
    embedder: Embedder, dimension: int, chunk_tokens: int, chunk_overlap: int
) -> None:
    """Refuse a dimension or chunking that `embedder` cannot give."""
    if not 32 <= dimension <= embedder.dimension:
        raise InvalidInput(
            f"dimension {dimension} is out of range: {embedder.name} gives 32..{embedder.dimension}"
        )
    if not 16 <= chunk_tokens <= embedder.max_tokens:
        raise InvalidInput(
            f"chunk_tokens {chunk_tokens} is out of range: {embedder.name} reads 16.."
            f"{embedder.max_tokens} tokens"
        )
    if not 0 <= chunk_overlap < chunk_tokens:
        raise InvalidInput(f"chunk_overlap must be between 0 and {chunk_tokens - 1}")


def migration_target(
    collection: CollectionInfo, changes: dict[str, Any], embedder: Embedder
) -> CollectionInfo:
    """The generation a migration of `collection` (in its active generation) builds:
    `changes` (any of model, dimension, chunk_tokens, chunk_overlap, document_instruction,
    query_instruction) over the present settings. The chunks are kept unless the chunk
    settings change; a new model's dimension defaults to its full one (0 here: the worker
    with that model settles it). Checked against `embedder` when it is the target's model;
    the migration's worker checks it otherwise."""
    model = changes.get("model") or collection.model
    same_model = model == collection.model
    default_dimension = collection.dimension if same_model else 0
    chunk_tokens = changes.get("chunk_tokens") or collection.chunk_tokens
    overlap = changes.get("chunk_overlap")
    if overlap is None:
        new_size = changes.get("chunk_tokens") is not None
        overlap = chunk_tokens // 8 if new_size else collection.chunk_overlap
    target = replace(
        collection,
        model=model,
        dimension=changes.get("dimension") or default_dimension,
        chunk_tokens=chunk_tokens,
        chunk_overlap=overlap,
        document_instruction=changes.get("document_instruction", collection.document_instruction),
        query_instruction=changes.get("query_instruction", collection.query_instruction),
    )
    if model == embedder.name:
        check_embedding(embedder, target.dimension or embedder.dimension, chunk_tokens, overlap)
    elif not 0 <= overlap < chunk_tokens:
        raise InvalidInput(f"chunk_overlap must be between 0 and {chunk_tokens - 1}")
    if replace(target, generation=0) == replace(collection, generation=0):
        raise InvalidInput(
            f"collection {collection.name!r} already embeds this way; give a model, dimension, "
            "chunking or prompt that differs"
        )
    return target


def ensure_collection(
    store: Store, settings: Settings, embedder: Embedder, name: str
) -> CollectionInfo:
    """The named collection, created with defaults if it does not exist yet."""
    found = store.find_collection(name)
    if found is not None:
        return found
    try:
        return store.create_collection(collection_spec(name, settings, embedder))
    except CollectionExists:  # another process created it meanwhile
        return store.get_collection(name)


def check_model(collection: CollectionInfo, embedder: Embedder) -> None:
    """Refuse to mix vectors of two models in one collection."""
    if collection.model != embedder.name:
        raise ModelMismatch(
            f"collection {collection.name!r} holds vectors of model {collection.model!r} but this "
            f"process embeds with {embedder.name!r}; start it with that model or use another "
            "collection"
        )
