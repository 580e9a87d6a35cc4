"""Jobs resume where they stopped: a cursor over the source's items, a cancel flag and the
worker holding the job.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("cursor", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("worker", sa.String(128)))
        batch.create_index("ix_jobs_created_at", ["created_at"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_created_at")
        batch.drop_column("worker")
        batch.drop_column("cancel_requested")
        batch.drop_column("cursor")
