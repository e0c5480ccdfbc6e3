"""The table of registered JavaScript codec scripts.

A module of its own, sharing `Base` with `storage.models` like `storage.models_usecases`:
these rows are written by municipal IT teams through the API and read by every
process that decodes (the bridge, the API), never by the ingest hot path.

A deletion only sets `deleted_at` (and moves `updated_at`), so that a decoding process
refreshing incrementally by `updated_at` sees the deletion too; registering the same
codec id again revives the row. `codec_id` therefore stays unique over all rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base


class CodecScript(Base):
    """A vendor codec script (`decodeUplink` or ChirpStack v3 `Decode`) under a `vendor/codec` id."""

    __tablename__ = "codec_script"

    id: Mapped[int] = mapped_column(primary_key=True)
    codec_id: Mapped[str] = mapped_column(String(200), unique=True)
    style: Mapped[str] = mapped_column(String(20))
    script: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(String(2000))
    devices: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    use_case: Mapped[str] = mapped_column(String(40), server_default=text("'generic'"))
    # The municipality whose admin registered it; NULL when a region admin did. A removed
    # municipality leaves its scripts to the region: other towns' devices may use them.
    owner_municipality_id: Mapped[int | None] = mapped_column(
        ForeignKey("municipality.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    deleted_at: Mapped[datetime | None] = mapped_column()
