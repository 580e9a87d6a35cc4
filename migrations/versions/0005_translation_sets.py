"""Documents that are translations of each other share a translation set, so that search can
show them as one result. A document's set is the smallest row id among its members (its own
id when it has no translations); NULL means it has not been linked yet, which the process
holding the collection's index does soon after (search.translations). `translation_key` is
the user's own link, `metadata.translation_of` or `metadata.translation_group`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("translation_set", sa.Integer, nullable=True))
        batch.add_column(sa.Column("translation_key", sa.String(512), nullable=True))
    op.create_index(  # with the id: the newest unlinked documents are one range read
        "ix_documents_collection_id_translation_set", "documents",
        ["collection_id", "translation_set", "id"],
    )
    op.create_index(
        "ix_documents_collection_id_translation_key", "documents",
        ["collection_id", "translation_key"],
    )


def downgrade() -> None:
    op.drop_index("ix_documents_collection_id_translation_key", "documents")
    op.drop_index("ix_documents_collection_id_translation_set", "documents")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("translation_key")
        batch.drop_column("translation_set")
