"""sharing grants: a municipality lets another one, or the region, read a use case

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 21:00:00

The table of `storage.models_sharing`. Besides the unique (owner, use case, grantee)
a partial unique index keeps region-wide grants (grantee NULL) single, since the
constraint counts NULLs as distinct.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sharing_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_municipality_id", sa.Integer(), nullable=False),
        sa.Column("use_case", sa.String(40), nullable=False),
        sa.Column("grantee_municipality_id", sa.Integer(), nullable=True),
        sa.Column("created_at", Timestamp, server_default=sa.func.now(), nullable=False),
        sa.Column("created_by", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_municipality_id"],
            ["municipality.id"],
            name=op.f("fk_sharing_grant_owner_municipality_id_municipality"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["grantee_municipality_id"],
            ["municipality.id"],
            name=op.f("fk_sharing_grant_grantee_municipality_id_municipality"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_grant")),
        sa.UniqueConstraint(
            "owner_municipality_id",
            "use_case",
            "grantee_municipality_id",
            name=op.f("uq_sharing_grant_owner_municipality_id"),
        ),
    )
    op.create_index(
        op.f("ix_sharing_grant_owner_municipality_id"), "sharing_grant", ["owner_municipality_id"]
    )
    op.create_index(
        op.f("ix_sharing_grant_grantee_municipality_id"), "sharing_grant", ["grantee_municipality_id"]
    )
    op.create_index(
        "uq_sharing_grant_region",
        "sharing_grant",
        ["owner_municipality_id", "use_case"],
        unique=True,
        postgresql_where=sa.text("grantee_municipality_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("sharing_grant")
