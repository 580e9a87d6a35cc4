"""Alembic environment and revisions: the only way the xlsearch schema is created or changed."""
