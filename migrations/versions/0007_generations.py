"""Generations: a collection's vectors can be re-made with another model, dimension, prompts
or chunking while searches go on. A generation is one such setting with its own chunks (texts
and vectors); the collection row names its active generation and carries that generation's
settings. Every collection so far becomes generation 1, active, holding its chunks as they
are. A job says which model its worker must embed with (NULL: the collection's active one).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "generations",
        sa.Column(
            "collection_id",
            sa.Integer,
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("model", sa.String(512), nullable=False),
        sa.Column("dimension", sa.Integer, nullable=False),
        sa.Column("chunk_tokens", sa.Integer, nullable=False),
        sa.Column("chunk_overlap", sa.Integer, nullable=False),
        sa.Column("document_instruction", sa.Text, nullable=True),
        sa.Column("query_instruction", sa.Text, nullable=True),
        sa.Column("job_id", sa.String(36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("switched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("collections") as batch:
        batch.add_column(
            sa.Column("generation", sa.Integer, nullable=False, server_default="1")
        )
    with op.batch_alter_table("chunks") as batch:
        batch.add_column(
            sa.Column("generation", sa.Integer, nullable=False, server_default="1")
        )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("model", sa.String(512), nullable=True))
    op.execute(
        "INSERT INTO generations (collection_id, number, state, model, dimension, "
        "chunk_tokens, chunk_overlap, document_instruction, query_instruction, created_at, "
        "switched_at) SELECT id, 1, 'active', model, dimension, chunk_tokens, chunk_overlap, "
        "document_instruction, query_instruction, created_at, created_at FROM collections"
    )
    op.drop_index("ix_chunks_collection_id_id", "chunks")
    op.drop_index("ix_chunks_document_id", "chunks")
    op.create_index(  # each generation's chunk log is one range read
        "ix_chunks_collection_id_generation_id", "chunks", ["collection_id", "generation", "id"]
    )
    op.create_index(  # a document's chunks in one generation, each ordinal once
        "uq_chunks_document_id_generation_ordinal", "chunks",
        ["document_id", "generation", "ordinal"], unique=True,
    )


def downgrade() -> None:
    op.execute(
        "DELETE FROM chunks WHERE generation <> (SELECT generation FROM collections "
        "WHERE collections.id = chunks.collection_id)"
    )
    # A snapshot of generation 1 could otherwise bind to chunks of a later one, relabelled.
    op.execute(
        "DELETE FROM index_snapshots WHERE collection_id IN "
        "(SELECT id FROM collections WHERE generation <> 1)"
    )
    op.drop_index("uq_chunks_document_id_generation_ordinal", "chunks")
    op.drop_index("ix_chunks_collection_id_generation_id", "chunks")
    op.create_index("ix_chunks_document_id", "chunks", ["document_id"])
    op.create_index("ix_chunks_collection_id_id", "chunks", ["collection_id", "id"])
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("model")
    with op.batch_alter_table("chunks") as batch:
        batch.drop_column("generation")
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("generation")
    op.drop_table("generations")
