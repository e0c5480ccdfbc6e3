"""Codec-script following: a registry kept in step with the stored scripts, broken ones reported."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from decoders import CodecRegistry
from services.codec_following import FollowingDecoder, ScriptFollower
from storage.codec_scripts import ScriptFields, delete_script, update_script
from storage.database import create_database_engine
from tests.storage.test_codec_scripts import FIELDS, SCRIPT, create, new_id


@pytest.fixture(scope="module")
def engine(migrated_db_url: str) -> Iterator[Engine]:
    engine = create_database_engine(migrated_db_url, pool_size=3)
    yield engine
    engine.dispose()


class Recorder:
    """A registry stand-in that remembers what the follower told it."""

    def __init__(self) -> None:
        self.scripts: dict[str, str] = {}

    def register_javascript(
        self, codec_id: str, script: str, *, style: str, devices: Sequence[str], use_case: str
    ) -> None:
        self.scripts[codec_id] = script

    def unregister_javascript(self, codec_id: str) -> None:
        self.scripts.pop(codec_id, None)


def test_follower_applies_changes_and_reports_scripts_that_do_not_load(engine: Engine) -> None:
    registry = CodecRegistry()
    follower = ScriptFollower(registry)
    kept, broken = new_id(), new_id()
    create(engine, kept)
    # Stored behind validation's back, as a changed sandbox might see an old script.
    create(engine, broken, ScriptFields(style="decodeUplink", script="function decodeUplink( {"))
    with Session(engine) as session:
        follower.refresh(session)
        assert registry.knows(kept)
        assert not registry.knows(broken)
        assert "SyntaxError" in follower.failures[broken]
        assert follower.refresh(session) == []

        update_script(session, broken, FIELDS)
        delete_script(session, kept)
        session.commit()
        assert [s.codec_id for s in follower.refresh(session)] == [broken, kept]
    assert registry.knows(broken)
    assert not registry.knows(kept)
    assert broken not in follower.failures
    registry.close()

    recorder = Recorder()
    follower = ScriptFollower(recorder)
    with Session(engine) as session:
        follower.refresh(session)
        assert recorder.scripts[broken] == SCRIPT
        assert kept not in recorder.scripts
        follower.forget()
        assert recorder.scripts == {}
        follower.refresh(session)  # forgetting starts over
    assert recorder.scripts[broken] == SCRIPT


def test_a_following_decoder_knows_the_scripts_stored_since_its_last_refresh(engine: Engine) -> None:
    following = FollowingDecoder()
    codec_id = new_id()
    try:
        following.refresh(engine)
        assert not following.registry.knows(codec_id)
        create(engine, codec_id)
        following.refresh(engine)
        assert following.registry.knows(codec_id)
        assert following.follower.registry is following.registry
    finally:
        following.follower.forget()
        following.registry.close()
