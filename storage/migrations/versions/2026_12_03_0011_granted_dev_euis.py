"""which DevEUIs a source town heard belong to devices of towns that granted it ingest

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 18:40:00

A town's unclaimed list leaves out the DevEUIs its sources heard that a granting owner
registered: those frames are the owner's to claim. Under row-level security the source
town cannot read the owner's `device` rows, so it could not tell. This function answers
exactly that and no more: among the DevEUIs the caller's own sources heard (its own
`device_activity`), those registered by a municipality that granted the caller ingest.
The source town learns nothing it does not see anyway, since its sources' frames of
those DevEUIs now go to the owner's devices.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = (
    "CREATE FUNCTION lorakom_granted_dev_euis() RETURNS SETOF text "
    "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ "
    "SELECT d.dev_eui::text FROM public.device d "
    "JOIN public.ingest_grant g ON g.owner_municipality_id = d.municipality_id "
    "WHERE g.source_municipality_id = public.lorakom_tenant_municipality() "
    "AND d.dev_eui IN (SELECT a.dev_eui FROM public.device_activity a "
    "WHERE a.municipality_id = public.lorakom_tenant_municipality()) $$"
)


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute("REVOKE ALL ON FUNCTION lorakom_granted_dev_euis() FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION lorakom_granted_dev_euis() TO lorakom_tenant")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS lorakom_granted_dev_euis()")
