"""A migration job: builds a collection's new generation from what the database already holds
(search.store.generations), then switches the collection to it.

Nothing is read from the sources again. Each document's chunk texts are embedded with the new
generation's model; a document is chunked anew from its stored text only when the chunk
settings change, or when the new model's tokenizer finds one of its chunks longer than
`chunk_tokens` (it would embed it cut short); and when only the dimension (down) or the
question prompt changes, the stored vectors are cut and renormalised (Matryoshka models are
trained for that), with no model call.

Resumable like an ingestion job: the job's cursor is the last document row handled, and a
document whose new chunks are stored is never made again (the switch, too, looks only for
documents missing from the new generation). Documents written while the migration runs (to
the active generation) are found by that same look-up and made before the switch, until at
most `SWITCH_GAPS` are left: those the switch makes inside its own transaction, under the log
lock, so the new generation holds every document when it becomes active.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from indexer.chunking import Chunk
from indexer.pipeline import IngestionStopped, Ingestor
from search.collections import check_embedding
from search.engine import Engine
from search.errors import InvalidInput
from search.schemas import DocumentIn
from search.store.generations import Made, SourceDocument
from search.store.jobs import JobInfo, JobStore
from search.store.records import ChunkRecord, CollectionInfo

log = logging.getLogger(__name__)

# Documents written meanwhile that the switch makes itself, under the log lock (writers wait
# for it meanwhile), at most; more, and they are made before it tries again.
SWITCH_GAPS = 8
CUT_BATCH = 512  # documents per batch when the stored vectors are cut


@dataclass(frozen=True)
class Migration:
    """How the chunks of `source` (the active generation) become those of `target`."""

    source: CollectionInfo
    target: CollectionInfo

    @property
    def rechunks(self) -> bool:
        return (self.source.chunk_tokens, self.source.chunk_overlap) != (
            self.target.chunk_tokens, self.target.chunk_overlap
        )

    @property
    def cuts_vectors(self) -> bool:
        """Whether the stored vectors serve, cut to the new dimension: same model, document
        prompt and chunks, and no more dimensions than they have."""
        return (
            self.source.model == self.target.model
            and self.source.document_instruction == self.target.document_instruction
            and not self.rechunks
            and self.target.dimension <= self.source.dimension
        )

    def make(
        self, ingestor: Ingestor, sources: list[SourceDocument],
        should_stop: Callable[[], bool] | None = None,
    ) -> Made:
        """The new generation's chunks of each of `sources`: the stored vectors cut, or the
        stored texts embedded again, except for documents chunked again (all of them when
        the chunk settings change, else those with a chunk that the new model's tokenizer
        finds longer than `chunk_tokens`, which it would otherwise cut short)."""
        if self.cuts_vectors:
            return [(source, [self._cut(chunk) for chunk in source.chunks]) for source in sources]
        pieces: dict[int, list[tuple[Chunk, str]]] = {}
        for source in sources:
            counted = [(Chunk(c.text, c.start, c.end, ingestor.count_tokens(c.text)), c.lang)
                       for c in source.chunks]
            if not self.rechunks and all(
                c.token_count <= self.target.chunk_tokens for c, _ in counted
            ):
                pieces[source.row] = counted
        again = [source for source in sources if source.row not in pieces]
        if again:
            drafts = ingestor.drafts({
                str(source.row): DocumentIn.model_construct(text=source.text or "",
                                                            lang=source.lang)
                for source in again
            })
            for source in again:
                draft = drafts[str(source.row)]
                pieces[source.row] = list(zip(draft.chunks, draft.chunk_langs, strict=True))
        ordered = [pieces[source.row] for source in sources]
        vectors = ingestor.vectors([c for chunks in ordered for c, _ in chunks], should_stop)
        made: Made = []
        offset = 0
        for source, chunks in zip(sources, ordered, strict=True):
            made.append((source, [
                ChunkRecord(n, chunk.start, chunk.end, chunk.token_count, lang, chunk.text,
                            vectors[offset + n])
                for n, (chunk, lang) in enumerate(chunks)
            ]))
            offset += len(chunks)
        return made

    def _cut(self, chunk: ChunkRecord) -> ChunkRecord:
        vector = np.asarray(chunk.vector[: self.target.dimension], dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        return ChunkRecord(chunk.ordinal, chunk.start, chunk.end, chunk.token_count, chunk.lang,
                           chunk.text, vector / norm if norm > 0 else vector)

    @property
    def reads(self) -> dict[str, bool]:
        """What a migration reads of each source document: its vectors to cut them, else
        its text, in case it is chunked again."""
        return {"with_vectors": self.cuts_vectors, "with_texts": not self.cuts_vectors}


def run_migration(
    engine: Engine,
    jobs: JobStore,
    job: JobInfo,
    worker: str,
    should_stop: Callable[[], bool],
) -> str | None:
    """Build the job's generation and switch to it; returns "succeeded", or None when it
    stopped early (told to, cancelled, or taken over), leaving the cursor to resume from.
    Raises MigrationConflict when the generation is no longer being built, InvalidInput
    when this worker's model cannot give its dimension or chunking."""
    store, embedder = engine.store, engine.embedder
    source = store.get_collection(job.collection)
    generation = store.generation(source.id, int(job.source["generation"]))
    if generation.dimension == 0:  # the model's own, which only its worker knows
        generation = store.settle_dimension(source.id, generation.number, embedder.dimension)
    target = generation.of(source)
    try:
        check_embedding(embedder, target.dimension, target.chunk_tokens, target.chunk_overlap)
    except InvalidInput as refused:
        raise InvalidInput(f"{refused}; start the migration again with settings that fit "
                           "(dimension, chunk_tokens, chunk_overlap)") from None
    migration = Migration(source, target)
    ingestor = Ingestor(store, embedder, target, engine.languages)
    # Without a model call a batch is only reads and writes: many documents at a time.
    batch = CUT_BATCH if migration.cuts_vectors else engine.settings.ingest_batch_documents
    cursor = job.cursor
    log.info("%s migrates %s from generation %d (%s, %d dimensions) to %d (%s, %d), "
             "from document row %d", worker, source.name, source.generation, source.model,
             source.dimension, target.generation, target.model, target.dimension, cursor)
    try:
        while not should_stop():
            sources = store.sources_after(source, target.generation, cursor, batch,
                                          **migration.reads)
            if not sources:
                break
            made = migration.make(ingestor, sources, should_stop)
            store.add_generation_chunks(source.id, target.generation, made)
            cursor = sources[-1].row
            if not jobs.advance(job.id, worker, len(sources), 0, [], cursor=cursor):
                return None
        while not should_stop():  # what was written meanwhile, until the switch can take it
            written_meanwhile = store.missing(source, target.generation, batch,
                                              **migration.reads)
            if len(written_meanwhile) > SWITCH_GAPS:
                store.add_generation_chunks(source.id, target.generation,
                                            migration.make(ingestor, written_meanwhile,
                                                           should_stop))
                continue
            if store.switch_generation(
                source, target.generation, lambda gaps: migration.make(ingestor, gaps),
                max_gaps=SWITCH_GAPS, **migration.reads,
            ) is not None:
                break
        else:
            return None
    except IngestionStopped:  # told to stop while embedding: the batch is dropped
        return None
    log.info("collection %s now searches generation %d", source.name, target.generation)
    return "succeeded"
