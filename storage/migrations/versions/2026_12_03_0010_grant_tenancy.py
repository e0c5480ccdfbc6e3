"""pending sharing grants, and row-level security for the grant tables of 0007 and 0010

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 18:10:00

Refusing a grant to an unknown slug told any municipal admin which slugs exist. Such a
grant is now kept in `pending_sharing_grant` (ids from `sharing_grant`'s sequence, so
one id space covers both) and opens nothing. A trigger on `municipality` turns the
pending grants naming a new municipality's slug into real grants, whatever path creates
the municipality (API, CLI, a source's configuration).

Row-level security (0009's roles and functions) for the grant tables younger than it:
a pending grant is its owner's alone; an ingest grant is read by its owner and by the
municipality it lets deliver, and written by its owner only. Dashboard logins read
neither: which town lets whose sources deliver is administration, not data.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)

RESOLVE_FUNCTION = """
CREATE FUNCTION lorakom_resolve_pending_grants() RETURNS trigger
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


ME = "(SELECT lorakom_scope_municipality())"
WRITER = "(SELECT lorakom_tenant_municipality())"

ROW_LEVEL_SECURITY = [
    "ALTER TABLE pending_sharing_grant ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY pending_sharing_grant_write ON pending_sharing_grant FOR ALL TO lorakom_tenant "
    f"USING (owner_municipality_id = {WRITER}) WITH CHECK (owner_municipality_id = {WRITER})",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON pending_sharing_grant TO lorakom_tenant",
    "ALTER TABLE ingest_grant ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY ingest_grant_read ON ingest_grant FOR SELECT TO lorakom_tenant "
    f"USING (owner_municipality_id = {ME} OR source_municipality_id = {ME})",
    "CREATE POLICY ingest_grant_write ON ingest_grant FOR ALL TO lorakom_tenant "
    f"USING (owner_municipality_id = {WRITER}) WITH CHECK (owner_municipality_id = {WRITER})",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ingest_grant TO lorakom_tenant",
    # Sequences created since 0009 granted usage on the sequences of its day.
    "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO lorakom_tenant",
]


def upgrade() -> None:
    op.create_table(
        "pending_sharing_grant",
        sa.Column(
            "id", sa.Integer(), server_default=sa.text("nextval('sharing_grant_id_seq')"), nullable=False
        ),
        sa.Column("owner_municipality_id", sa.Integer(), nullable=False),
        sa.Column("use_case", sa.String(40), nullable=False),
        sa.Column("grantee_slug", sa.String(63), nullable=False),
        sa.Column("created_at", Timestamp, server_default=sa.func.now(), nullable=False),
        sa.Column("created_by", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_municipality_id"],
            ["municipality.id"],
            name=op.f("fk_pending_sharing_grant_owner_municipality_id_municipality"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_sharing_grant")),
        sa.UniqueConstraint(
            "owner_municipality_id",
            "use_case",
            "grantee_slug",
            name=op.f("uq_pending_sharing_grant_owner_municipality_id"),
        ),
    )
    op.create_index(
        op.f("ix_pending_sharing_grant_owner_municipality_id"),
        "pending_sharing_grant",
        ["owner_municipality_id"],
    )
    op.create_index(op.f("ix_pending_sharing_grant_grantee_slug"), "pending_sharing_grant", ["grantee_slug"])
    op.execute(RESOLVE_FUNCTION)
    op.execute(
        "CREATE TRIGGER municipality_resolves_pending_grants AFTER INSERT ON municipality "
        "FOR EACH ROW EXECUTE FUNCTION lorakom_resolve_pending_grants()"
    )
    for statement in ROW_LEVEL_SECURITY:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS ingest_grant_read ON ingest_grant")
    op.execute("DROP POLICY IF EXISTS ingest_grant_write ON ingest_grant")
    op.execute("ALTER TABLE ingest_grant DISABLE ROW LEVEL SECURITY")
    op.execute("REVOKE ALL ON ingest_grant FROM lorakom_tenant")
    op.execute("DROP TRIGGER IF EXISTS municipality_resolves_pending_grants ON municipality")
    op.execute("DROP FUNCTION IF EXISTS lorakom_resolve_pending_grants()")
    op.drop_table("pending_sharing_grant")
