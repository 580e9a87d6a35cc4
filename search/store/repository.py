"""`Store`: every read and write the engine makes to the database, each in its own short
transaction. Its parts live beside it: collections, documents and the chunk log."""

from __future__ import annotations

from search.store.aliases import AliasRepository
from search.store.chunk_log import ChunkLog
from search.store.collections import CollectionRepository
from search.store.documents import DocumentRepository
from search.store.generations import GenerationRepository
from search.store.translations import TranslationRepository


class Store(
    CollectionRepository, AliasRepository, DocumentRepository, ChunkLog, TranslationRepository,
    GenerationRepository,
):
    """The database as the log: documents, chunks and vectors are written here first."""
