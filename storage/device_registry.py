"""What the bridge needs to know about registered devices, read in bulk and cached.

A DevEUI alone never decides where an uplink goes: `may_deliver` says whether the
source's municipality may write for the device that has it (its own, or granted).

The bridge looks up every uplink's DevEUI; a query per uplink would cost more than
the rest of the pipeline together, so it keeps all devices in memory and asks the
database only for rows changed since its last look (`device.updated_at`, which
every write to a device sets). A full reload now and then catches deletions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from domain.errors import NotFound
from domain.ids import DevEui


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """A registered device as the decoders see it."""

    device_id: int
    dev_eui: DevEui
    municipality_id: int
    codec_id: str | None
    decoder_source: str | None
    use_case: str | None
    metadata: Mapping[str, Any]
    updated_at: datetime


_SELECT = """
SELECT id, dev_eui, municipality_id, codec_id, decoder_source, use_case, metadata, updated_at
FROM device
"""


def load_devices(
    conn: psycopg.Connection[Any], *, changed_after: datetime | None = None
) -> list[DeviceProfile]:
    if changed_after is None:
        rows = conn.execute(_SELECT).fetchall()
    else:
        rows = conn.execute(_SELECT + " WHERE updated_at > %s", (changed_after,)).fetchall()
    conn.commit()
    return [_profile(row) for row in rows]


IngestGrants = frozenset[tuple[int, int]]
"""(owner municipality id, source municipality id): the owner lets the source town's sources deliver."""


def load_ingest_grants(conn: psycopg.Connection[Any]) -> IngestGrants:
    """Every ingest grant, read whole each time: a handful of rows, and a revoked one must vanish."""
    rows = conn.execute("SELECT owner_municipality_id, source_municipality_id FROM ingest_grant").fetchall()
    conn.commit()
    return frozenset((int(owner), int(source)) for owner, source in rows)


def may_deliver(profile: DeviceProfile, source_municipality_id: int, grants: IngestGrants) -> bool:
    """Whether a source of `source_municipality_id` may write for this registered device.

    The one rule of ingest tenancy: a source writes for its own municipality's devices,
    and for another's only where that owner granted it (`storage.models_sharing.IngestGrant`).
    """
    owner = profile.municipality_id
    return owner == source_municipality_id or (owner, source_municipality_id) in grants


def _profile(row: Any) -> DeviceProfile:
    return DeviceProfile(
        device_id=row[0],
        dev_eui=DevEui(row[1]),
        municipality_id=row[2],
        codec_id=row[3],
        decoder_source=row[4],
        use_case=row[5],
        metadata=row[6] or {},
        updated_at=row[7],
    )


def ensure_municipality(conn: psycopg.Connection[Any], slug: str, name: str | None = None) -> int:
    """The id of a municipality, created on first use (a source names its municipality by slug)."""
    row = conn.execute(
        """
        INSERT INTO municipality (slug, name) VALUES (%s, %s)
        ON CONFLICT (slug) DO UPDATE SET slug = excluded.slug
        RETURNING id
        """,
        (slug, name or slug.replace("-", " ").title()),
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def load_device(conn: psycopg.Connection[Any], device_id: int) -> DeviceProfile:
    row = conn.execute(_SELECT + " WHERE id = %s", (device_id,)).fetchone()
    if row is None:
        raise NotFound(f"no device with id {device_id}")
    return _profile(row)
