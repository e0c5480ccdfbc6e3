"""pending ingest grants: an ingest grant to a slug no municipality has yet

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 19:00:00

As with sharing grants (0010): refusing an ingest grant to an unknown slug told any
municipal admin which slugs exist. Such a grant is kept in `pending_ingest_grant` (ids
from `ingest_grant`'s sequence), lets nobody deliver, and becomes a real ingest grant
when a municipality of that slug is created: the trigger function of 0010 now moves
both kinds. A pending grant is its owner's alone under row-level security.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)

RESOLVE_BOTH = """
CREATE OR REPLACE FUNCTION lorakom_resolve_pending_grants() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    INSERT INTO sharing_grant (id, owner_municipality_id, use_case, grantee_municipality_id, created_at, created_by)
    SELECT id, owner_municipality_id, use_case, NEW.id, created_at, created_by
    FROM pending_sharing_grant WHERE grantee_slug = NEW.slug
    ON CONFLICT DO NOTHING;
    DELETE FROM pending_sharing_grant WHERE grantee_slug = NEW.slug;
    INSERT INTO ingest_grant (id, owner_municipality_id, source_municipality_id, created_at, created_by)
    SELECT id, owner_municipality_id, NEW.id, created_at, created_by
    FROM pending_ingest_grant WHERE source_slug = NEW.slug
    ON CONFLICT DO NOTHING;
    DELETE FROM pending_ingest_grant WHERE source_slug = NEW.slug;
    RETURN NULL;
END
$$
"""

RESOLVE_SHARING_ONLY = """
CREATE OR REPLACE FUNCTION lorakom_resolve_pending_grants() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    INSERT INTO sharing_grant (id, owner_municipality_id, use_case, grantee_municipality_id, created_at, created_by)
    SELECT id, owner_municipality_id, use_case, NEW.id, created_at, created_by
    FROM pending_sharing_grant WHERE grantee_slug = NEW.slug
    ON CONFLICT DO NOTHING;
    DELETE FROM pending_sharing_grant WHERE grantee_slug = NEW.slug;
    RETURN NULL;
END
$$
"""

WRITER = "(SELECT lorakom_tenant_municipality())"


def upgrade() -> None:
    op.create_table(
        "pending_ingest_grant",
        sa.Column(
            "id", sa.Integer(), server_default=sa.text("nextval('ingest_grant_id_seq')"), nullable=False
        ),
        sa.Column("owner_municipality_id", sa.Integer(), nullable=False),
        sa.Column("source_slug", sa.String(63), nullable=False),
        sa.Column("created_at", Timestamp, server_default=sa.func.now(), nullable=False),
        sa.Column("created_by", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_municipality_id"],
            ["municipality.id"],
            name=op.f("fk_pending_ingest_grant_owner_municipality_id_municipality"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_ingest_grant")),
        sa.UniqueConstraint(
            "owner_municipality_id", "source_slug", name=op.f("uq_pending_ingest_grant_owner_municipality_id")
        ),
    )
    op.create_index(op.f("ix_pending_ingest_grant_source_slug"), "pending_ingest_grant", ["source_slug"])
    op.execute(RESOLVE_BOTH)
    for statement in (
        "ALTER TABLE pending_ingest_grant ENABLE ROW LEVEL SECURITY",
        "CREATE POLICY pending_ingest_grant_write ON pending_ingest_grant FOR ALL TO lorakom_tenant "
        f"USING (owner_municipality_id = {WRITER}) WITH CHECK (owner_municipality_id = {WRITER})",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON pending_ingest_grant TO lorakom_tenant",
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute(RESOLVE_SHARING_ONLY)
    op.drop_table("pending_ingest_grant")
