"""TimescaleDB: hypertables, compression settings, continuous aggregates

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 14:00:00

With TimescaleDB usable (see `storage.timescale.timescale_available`) the
time-series tables become hypertables and `reading_hourly` / `reading_daily`
are created. Policies are not set here: their ages are settings and change
without a migration, so `lorakom db upgrade` applies them after the migrations
(`storage.timescale.apply_policies`).

On plain PostgreSQL this revision changes nothing. A BRIN index on the time
columns was considered and left out: the raw tables' primary keys lead with their
time column, so a B-tree serves the range scans a BRIN index would, and
`reading`'s key (device_id, quantity, time) serves every per-series history read.

Offline (`--sql`) there is no server to ask, so the TimescaleDB branch is
rendered: offline SQL describes a TimescaleDB deployment.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import context, op

from storage import timescale

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if context.is_offline_mode():
        for statement in timescale.structure_statements():
            op.execute(statement)
        return
    connection = op.get_bind()
    if timescale.timescale_available(connection):
        timescale.convert(connection)


def downgrade() -> None:
    if context.is_offline_mode() or timescale.timescale_enabled(op.get_bind()):
        for statement in timescale.teardown_statements():
            op.execute(statement)
