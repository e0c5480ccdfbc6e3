"""ingest trust: ingest grants, link health per municipality, uplinks with a refused time

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 17:00:00

- `ingest_grant`: a municipality (the owner of devices) lets another municipality's
  sources deliver uplinks for its devices. Without one, a source writes only for
  devices of its own municipality (`storage.models_sharing.IngestGrant`).
- `device_activity` is keyed by (municipality, DevEUI): what one town's sources heard
  of a DevEUI is that town's, and another town's source hearing the same DevEUI no
  longer moves it.
- `uplink.claimed_received_at`: the time a network server claimed for an uplink when
  it lay too far in the future; the frame is then stored under the bridge's own
  receive time (`ingest.pipeline`), and this column both keeps the claim and flags the
  frame. Its partial index finds a redelivery of such a frame by its key.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ingest_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_municipality_id", sa.Integer(), nullable=False),
        sa.Column("source_municipality_id", sa.Integer(), nullable=False),
        sa.Column("created_at", Timestamp, server_default=sa.func.now(), nullable=False),
        sa.Column("created_by", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_municipality_id"],
            ["municipality.id"],
            name=op.f("fk_ingest_grant_owner_municipality_id_municipality"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_municipality_id"],
            ["municipality.id"],
            name=op.f("fk_ingest_grant_source_municipality_id_municipality"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_grant")),
        sa.UniqueConstraint(
            "owner_municipality_id",
            "source_municipality_id",
            name=op.f("uq_ingest_grant_owner_municipality_id"),
        ),
    )
    op.create_index(
        op.f("ix_ingest_grant_source_municipality_id"), "ingest_grant", ["source_municipality_id"]
    )

    op.drop_index("ix_device_activity_municipality_id", table_name="device_activity")
    op.drop_constraint("pk_device_activity", "device_activity", type_="primary")
    op.create_primary_key("pk_device_activity", "device_activity", ["municipality_id", "dev_eui"])

    op.add_column("uplink", sa.Column("claimed_received_at", Timestamp, nullable=True))
    op.create_index(
        "ix_uplink_time_refused",
        "uplink",
        ["uplink_key"],
        postgresql_where=sa.text("claimed_received_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_uplink_time_refused", table_name="uplink")
    op.drop_column("uplink", "claimed_received_at")
    op.drop_constraint("pk_device_activity", "device_activity", type_="primary")
    # One row per DevEUI again: the most recently heard town's row stays.
    op.execute(
        "DELETE FROM device_activity a USING device_activity b "
        "WHERE a.dev_eui = b.dev_eui AND (a.last_seen_at, a.municipality_id) < (b.last_seen_at, b.municipality_id)"
    )
    op.create_primary_key("pk_device_activity", "device_activity", ["dev_eui"])
    op.create_index("ix_device_activity_municipality_id", "device_activity", ["municipality_id"])
    op.drop_table("ingest_grant")
