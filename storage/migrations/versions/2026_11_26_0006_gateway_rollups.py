"""gateway rollups: receptions per gateway in 5-minute bins, and the DevEUIs each gateway hears

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 22:00:00

The tables of `storage.models.GatewayActivity` and `GatewayDevice`, kept by ingest
from now on, filled here once from the receptions already stored so that a
deployment's gateway health does not start from nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gateway_activity",
        sa.Column("gateway_id", sa.String(128), nullable=False),
        sa.Column("bin_start", Timestamp, nullable=False),
        sa.Column("receptions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "gateway_id", "bin_start", name=op.f("pk_gateway_activity"), postgresql_include=["receptions"]
        ),
    )
    op.create_table(
        "gateway_device",
        sa.Column("gateway_id", sa.String(128), nullable=False),
        sa.Column("dev_eui", sa.String(16), nullable=False),
        sa.Column("heard_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("gateway_id", "dev_eui", name=op.f("pk_gateway_device")),
    )
    op.create_index("ix_gateway_device_dev_eui", "gateway_device", ["dev_eui"])
    op.execute(
        "INSERT INTO gateway_activity (gateway_id, bin_start, receptions) "
        "SELECT gateway_id, date_bin('5 minutes', received_at, TIMESTAMPTZ '2000-01-03 00:00:00+00'), count(*) "
        "FROM reception GROUP BY 1, 2"
    )
    op.execute(
        "INSERT INTO gateway_device (gateway_id, dev_eui, heard_at) "
        "SELECT gateway_id, dev_eui, max(received_at) FROM reception WHERE dev_eui IS NOT NULL GROUP BY 1, 2"
    )


def downgrade() -> None:
    op.drop_index("ix_gateway_device_dev_eui", table_name="gateway_device")
    op.drop_table("gateway_device")
    op.drop_table("gateway_activity")
