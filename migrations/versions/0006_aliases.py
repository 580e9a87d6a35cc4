"""Aliases: a second name for a collection that searches and writes can use, switched to
another collection in one statement, so that a collection built anew (another model, other
settings) replaces the one in use without clients changing what they ask for.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aliases",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column(
            "collection_id",
            sa.Integer,
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_aliases_collection_id", "aliases", ["collection_id"])


def downgrade() -> None:
    op.drop_index("ix_aliases_collection_id", "aliases")
    op.drop_table("aliases")
