"""Codec scripts in PostgreSQL: writes, incremental reads that see deletions, commit-ordered stamps."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from domain.device_fields import DeviceSpec
from domain.errors import Conflict, NotFound
from storage.codec_scripts import (
    ScriptFields,
    create_script,
    delete_script,
    get_script,
    list_scripts,
    load_changed,
    script_owner,
    update_script,
)
from storage.database import create_database_engine, libpq_url
from storage.devices import create_device
from storage.models import Base
from storage.municipalities import create_municipality

SCRIPT = "function decodeUplink(input) { return { data: { first: input.bytes[0] } }; }"
FIELDS = ScriptFields(style="decodeUplink", script=SCRIPT, description="first byte", devices=("X-1",))


@pytest.fixture(scope="module")
def engine(migrated_db_url: str) -> Iterator[Engine]:
    engine = create_database_engine(migrated_db_url, pool_size=3)
    yield engine
    engine.dispose()


def new_id() -> str:
    return f"test-{uuid.uuid4().hex[:8]}/codec"


def create(engine: Engine, codec_id: str, fields: ScriptFields = FIELDS) -> datetime:
    with Session(engine) as session:
        stored = create_script(session, codec_id, fields, owner_municipality_id=None)
        session.commit()
    return stored.updated_at


def watermark(engine: Engine) -> datetime:
    """A `since` before anything this test writes: writes stamp later than every stored stamp."""
    with engine.connect() as conn:
        stamp: datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    return stamp


def test_create_get_update_delete_and_revive(engine: Engine) -> None:
    codec_id = new_id()
    create(engine, codec_id)
    with Session(engine) as session:
        stored = get_script(session, codec_id)
        assert (stored.script, stored.devices, stored.use_case, stored.deleted) == (
            SCRIPT,
            ("X-1",),
            "generic",
            False,
        )
        assert stored.script_bytes == len(SCRIPT)
        assert codec_id in {info.codec_id for info in list_scripts(session)}
        with pytest.raises(Conflict):
            create_script(session, codec_id, FIELDS, owner_municipality_id=None)
        session.rollback()

        changed = update_script(
            session, codec_id, ScriptFields(style="Decode", script="function Decode() {}")
        )
        session.commit()
        assert (changed.style, changed.devices, changed.description) == ("Decode", (), None)
        assert changed.updated_at > stored.updated_at

        delete_script(session, codec_id)
        session.commit()
        with pytest.raises(NotFound):
            get_script(session, codec_id)
        with pytest.raises(NotFound):
            script_owner(session, codec_id)
        assert codec_id not in {info.codec_id for info in list_scripts(session)}

    revived = create(engine, codec_id)
    with Session(engine) as session:
        again = get_script(session, codec_id)
        assert (again.script, again.updated_at, again.created_at) == (SCRIPT, revived, revived)


def test_a_script_a_device_uses_is_not_deleted(engine: Engine) -> None:
    codec_id = new_id()
    create(engine, codec_id)
    with Session(engine) as session:
        town = create_municipality(session, slug=f"t-{uuid.uuid4().hex[:8]}", name="T", district=None)
        spec = DeviceSpec(dev_eui=uuid.uuid4().hex[:16], name="Probe", codec_id=codec_id)
        create_device(session, municipality_id=town.id, spec=spec)
        session.commit()
        with pytest.raises(Conflict, match="1 device"):
            delete_script(session, codec_id)


def test_load_changed_sees_changes_and_deletions_in_order(engine: Engine, migrated_db_url: str) -> None:
    since = watermark(engine)
    first, second = new_id(), new_id()
    create(engine, first)
    create(engine, second)
    with Session(engine) as session:
        delete_script(session, first)
        session.commit()

    with psycopg.connect(libpq_url(migrated_db_url)) as conn:
        changed = load_changed(conn, since)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # it closed what it opened
        assert load_changed(conn, changed[-1].updated_at) == []
    assert [(s.codec_id, s.deleted, s.script) for s in changed] == [
        (second, False, SCRIPT),
        (first, True, ""),
    ]

    with Session(engine) as session:
        assert [s.codec_id for s in load_changed(session, since)] == [second, first]
        assert not session.in_transaction()
        everything = {s.codec_id for s in load_changed(session, None)}
    assert second in everything
    assert first not in everything


def test_stamps_follow_commit_order(engine: Engine) -> None:
    """A writer that starts while another is open stamps after it, so `since` never skips a row."""
    early, late = new_id(), new_id()
    late_stamp: list[datetime] = []

    def second_writer() -> None:
        late_stamp.append(create(engine, late))

    with Session(engine) as session:
        early_stamp = create_script(session, early, FIELDS, owner_municipality_id=None).updated_at
        writer = threading.Thread(target=second_writer)
        writer.start()
        time.sleep(0.3)
        assert writer.is_alive(), "the second writer must wait for the first to commit"
        session.commit()
    writer.join(timeout=10)
    assert late_stamp
    assert late_stamp[0] > early_stamp


def test_the_migration_matches_the_model(engine: Engine) -> None:
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in differences if "codec_script" in repr(d)] == []
