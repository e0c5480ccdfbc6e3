"""Alembic migrations; `storage.schema.upgrade_database` runs them without an alembic.ini."""
