"""The table that maps dashboard logins to the municipality whose rows they may read.

A module of its own, sharing `Base` with `storage.models`: it is written by whoever
provisions the dashboards (one login per municipality, and one for the region) and
read only by the database itself, in the row-level security policies of migration
0009. No role but the tables' owner may read it: a reader must not learn, let alone
choose, which municipality another login stands for.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base


class ReaderRole(Base):
    """`role_name` (a login that is a member of `lorakom_reader`) reads `municipality_id`'s rows.

    NULL stands for the region: such a login reads what municipalities shared with the region.
    """

    __tablename__ = "reader_role"

    role_name: Mapped[str] = mapped_column(Text, primary_key=True)
    municipality_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("municipality.id", ondelete="CASCADE"), nullable=True
    )
