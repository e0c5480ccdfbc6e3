"""codec scripts: vendor JavaScript codecs registered by municipal IT teams

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 20:00:00

The table of `storage.models_codecs`. `updated_at` is indexed because every decoding
process polls it for changes; deletions are soft (`deleted_at`) so that polling sees them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "codec_script",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("codec_id", sa.String(200), nullable=False),
        sa.Column("style", sa.String(20), nullable=False),
        sa.Column("script", sa.Text(), nullable=False),
        sa.Column("description", sa.String(2000), nullable=True),
        sa.Column("devices", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("use_case", sa.String(40), server_default=sa.text("'generic'"), nullable=False),
        sa.Column("owner_municipality_id", sa.Integer(), nullable=True),
        sa.Column("created_at", Timestamp, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", Timestamp, server_default=sa.func.now(), nullable=False),
        sa.Column("deleted_at", Timestamp, nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_municipality_id"],
            ["municipality.id"],
            name=op.f("fk_codec_script_owner_municipality_id_municipality"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_codec_script")),
        sa.UniqueConstraint("codec_id", name=op.f("uq_codec_script_codec_id")),
    )
    op.create_index(op.f("ix_codec_script_owner_municipality_id"), "codec_script", ["owner_municipality_id"])
    op.create_index(op.f("ix_codec_script_updated_at"), "codec_script", ["updated_at"])


def downgrade() -> None:
    op.drop_table("codec_script")
