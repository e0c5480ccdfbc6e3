"""Registered JavaScript codec scripts: stored once, followed by every process that decodes.

The API writes the `codec_script` table; the bridge and the API itself keep their
`CodecRegistry` in step by asking only for rows changed since their last look
(`load_changed`; `services.codec_following` applies the changes). For that look
to miss nothing, `updated_at` must grow in commit order, which `now()` does not
guarantee (two writers can commit in the other order than they began). So every
write first takes a table lock that only writers contend for, then stamps
`updated_at` later than every stamp already there: a reader that has seen a stamp
has seen every commit before it. Codec scripts change a few times a year, so
serialising their writers costs nothing.

Storage may not import `decoders` (they are peers), so the style names are mirrored here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, overload

import psycopg
from psycopg.rows import tuple_row
from sqlalchemy import Connection, func, select, text
from sqlalchemy.orm import Session

from domain.decoding import ScriptStyleName
from domain.errors import Conflict, NotFound
from storage.models import Device
from storage.models_codecs import CodecScript

CODEC_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,98}/[a-z0-9][a-z0-9._-]{0,98}$"
"""`vendor/codec` as in the LoRaWAN Device Repository, lower case like its ids."""
MAX_SCRIPT_BYTES = 2 * 1024 * 1024
"""Vendor codecs with bundled lookup tables reach a few hundred KB; 2 MB leaves room."""


@dataclass(frozen=True, slots=True)
class ScriptFields:
    """What a registrant says about a script; the codec id and owner are given apart."""

    style: ScriptStyleName
    script: str
    description: str | None = None
    devices: tuple[str, ...] = ()
    use_case: str = "generic"


@dataclass(frozen=True, slots=True)
class ScriptInfo:
    """A registered script without its text, as lists show it."""

    codec_id: str
    style: str
    description: str | None
    devices: tuple[str, ...]
    use_case: str
    owner_municipality_id: int | None
    script_bytes: int
    created_at: datetime
    updated_at: datetime
    deleted: bool


@dataclass(frozen=True, slots=True)
class StoredScript(ScriptInfo):
    """A registered script with its text; a deleted one (from `load_changed`) has the text ''."""

    script: str


def _lock_and_stamp(session: Session) -> datetime:
    """Serialise writers and return an `updated_at` later than any stored (see module doc)."""
    session.execute(text("LOCK TABLE codec_script IN SHARE ROW EXCLUSIVE MODE"))
    stamp: datetime = session.execute(
        text(
            "SELECT greatest(clock_timestamp(), max(updated_at) + interval '1 microsecond') FROM codec_script"
        )
    ).scalar_one()
    return stamp


def _row(session: Session, codec_id: str) -> CodecScript | None:
    return session.scalars(select(CodecScript).where(CodecScript.codec_id == codec_id)).one_or_none()


def _live_row(session: Session, codec_id: str) -> CodecScript:
    row = _row(session, codec_id)
    if row is None or row.deleted_at is not None:
        raise NotFound(f"no codec script {codec_id!r}")
    return row


def _fill(row: CodecScript, fields: ScriptFields, stamp: datetime) -> None:
    row.style = fields.style
    row.script = fields.script
    row.description = fields.description
    row.devices = list(fields.devices)
    row.use_case = fields.use_case
    row.updated_at = stamp


def create_script(
    session: Session, codec_id: str, fields: ScriptFields, *, owner_municipality_id: int | None
) -> StoredScript:
    """Register a script; a deleted one under the same id is revived as new. The caller commits."""
    stamp = _lock_and_stamp(session)
    row = _row(session, codec_id)
    if row is not None and row.deleted_at is None:
        raise Conflict(f"a codec script {codec_id!r} is registered already; change it with PUT")
    if row is None:
        row = CodecScript(codec_id=codec_id)
        session.add(row)
    row.owner_municipality_id = owner_municipality_id
    row.created_at = stamp
    row.deleted_at = None
    _fill(row, fields, stamp)
    session.flush()
    return get_script(session, codec_id)


def update_script(session: Session, codec_id: str, fields: ScriptFields) -> StoredScript:
    """Replace a script and its description; the owner stays. The caller commits."""
    stamp = _lock_and_stamp(session)
    row = _live_row(session, codec_id)
    _fill(row, fields, stamp)
    session.flush()
    return get_script(session, codec_id)


def delete_script(session: Session, codec_id: str) -> None:
    """Mark a script deleted, unless devices still name it: they would silently stop decoding.

    The caller commits.
    """
    stamp = _lock_and_stamp(session)
    row = _live_row(session, codec_id)
    users = session.scalar(select(func.count()).select_from(Device).where(Device.codec_id == codec_id)) or 0
    if users:
        raise Conflict(
            f"{users} device(s) still use codec {codec_id!r}; give them another codec before deleting it"
        )
    row.deleted_at = stamp
    row.updated_at = stamp
    session.flush()


def script_owner(session: Session, codec_id: str) -> int | None:
    """The owning municipality of a registered script (None: the region's); NotFound if none."""
    found = session.execute(
        select(CodecScript.owner_municipality_id).where(
            CodecScript.codec_id == codec_id, CodecScript.deleted_at.is_(None)
        )
    ).one_or_none()
    if found is None:
        raise NotFound(f"no codec script {codec_id!r}")
    return found[0]


def get_script(session: Session, codec_id: str) -> StoredScript:
    found = _fetch(session, "WHERE codec_id = %(codec_id)s AND deleted_at IS NULL", {"codec_id": codec_id})
    if not found:
        raise NotFound(f"no codec script {codec_id!r}")
    return found[0]


def list_scripts(session: Session) -> list[ScriptInfo]:
    """Every registered script by codec id, without the texts (they can be megabytes each)."""
    return _fetch(session, "WHERE deleted_at IS NULL ORDER BY codec_id", {}, with_text=False)


def load_changed(
    conn: psycopg.Connection[Any] | Session | Connection, since: datetime | None
) -> list[StoredScript]:
    """Scripts whose row changed after `since`, deletions included, oldest change first.

    `since=None` gives every registered script (no deletions: there is nothing to undo).
    Pass the largest `updated_at` seen so far as the next `since`; writers stamp in commit
    order, so nothing is skipped. Takes a psycopg connection (the bridge) or a SQLAlchemy
    session or connection (the API); a transaction this call had to open is closed again,
    one the caller had open is left alone.
    """
    if isinstance(conn, psycopg.Connection):
        opened = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE and not conn.autocommit
    else:
        opened = not conn.in_transaction()
    if since is None:
        changed = _fetch(conn, "WHERE deleted_at IS NULL ORDER BY updated_at", {})
    else:
        changed = _fetch(conn, "WHERE updated_at > %(since)s ORDER BY updated_at", {"since": since})
    if opened:
        conn.commit()
    return changed


_INFO_COLUMNS = """
SELECT codec_id, style, description, devices, use_case, owner_municipality_id,
       octet_length(script), created_at, updated_at, deleted_at IS NOT NULL
"""
_TEXT_COLUMN = ", CASE WHEN deleted_at IS NULL THEN script ELSE '' END"


@overload
def _fetch(
    conn: psycopg.Connection[Any] | Session | Connection, where: str, params: dict[str, Any]
) -> list[StoredScript]: ...
@overload
def _fetch(
    conn: psycopg.Connection[Any] | Session | Connection,
    where: str,
    params: dict[str, Any],
    *,
    with_text: Literal[False],
) -> list[ScriptInfo]: ...
def _fetch(
    conn: psycopg.Connection[Any] | Session | Connection,
    where: str,
    params: dict[str, Any],
    *,
    with_text: bool = True,
) -> list[StoredScript] | list[ScriptInfo]:
    """One query in psycopg's parameter style, which SQLAlchemy's psycopg driver passes through."""
    query = _INFO_COLUMNS + (_TEXT_COLUMN if with_text else "") + " FROM codec_script " + where
    rows: Sequence[tuple[Any, ...]]
    if isinstance(conn, psycopg.Connection):
        with conn.cursor(row_factory=tuple_row) as cursor:
            rows = cursor.execute(query, params).fetchall()
    else:
        connection = conn.connection() if isinstance(conn, Session) else conn
        rows = [tuple(row) for row in connection.exec_driver_sql(query, params)]
    if not with_text:
        return [ScriptInfo(**_info_fields(row)) for row in rows]
    return [StoredScript(**_info_fields(row), script=row[10]) for row in rows]


def _info_fields(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "codec_id": row[0],
        "style": row[1],
        "description": row[2],
        "devices": tuple(row[3]),  # JSONB arrays come as lists
        "use_case": row[4],
        "owner_municipality_id": row[5],
        "script_bytes": row[6],
        "created_at": row[7],
        "updated_at": row[8],
        "deleted": row[9],
    }
