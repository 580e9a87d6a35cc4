"""Snapshots are bound to the database they came from: the database's identity (a random id
written once, here) and a record of every snapshot taken, so that a restored backup or another
database in the same data folder makes indexes rebuild instead of serving the wrong vectors.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    identity = op.create_table(
        "database_identity",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.bulk_insert(identity, [{"id": str(uuid.uuid4()), "created_at": datetime.now(UTC)}])
    op.create_table(
        "index_snapshots",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "collection_id",
            sa.Integer,
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("chunk_watermark", sa.Integer, nullable=False),
        sa.Column("tombstone_watermark", sa.Integer, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_index_snapshots_collection_id", "index_snapshots", ["collection_id"])


def downgrade() -> None:
    op.drop_index("ix_index_snapshots_collection_id", "index_snapshots")
    op.drop_table("index_snapshots")
    op.drop_table("database_identity")
