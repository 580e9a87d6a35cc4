"""Snapshot records per generation: a collection's generations are snapshotted apart, so the
newest records are kept for each of them (during a migration the generation being built no
longer pushes out the records of the one being searched, nor after the switch those of the
one kept for a rollback). A record so far is given the generation of the chunk at its
watermark (a snapshot's watermark is the newest chunk of its own generation it holds), else
the collection's active one: a record that still comes out wrong only costs a rebuild.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("index_snapshots") as batch:
        batch.add_column(
            sa.Column("generation", sa.Integer, nullable=False, server_default="1")
        )
    op.execute(
        "UPDATE index_snapshots SET generation = COALESCE("
        "(SELECT chunks.generation FROM chunks WHERE chunks.id = index_snapshots.chunk_watermark),"
        " (SELECT collections.generation FROM collections"
        " WHERE collections.id = index_snapshots.collection_id), 1)"
    )


def downgrade() -> None:
    with op.batch_alter_table("index_snapshots") as batch:
        batch.drop_column("generation")
