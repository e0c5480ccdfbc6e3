"""Persistence: PostgreSQL (with TimescaleDB when the extension is present).

Holds the SQLAlchemy models, the Alembic migrations, the embedded server for a
machine with nothing installed, and the query functions that return domain
types. Nothing above this package writes SQL.
"""
