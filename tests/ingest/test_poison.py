"""A message the database refuses does not hold up the rest: it is kept as rejected, the others go in."""

from __future__ import annotations

from pathlib import Path

import psycopg

from ingest.metrics import Outcome
from tests.conftest import Broker
from tests.ingest.harness import (
    BOTH_RECEIVE_PATHS,
    publish,
    scalar,
    start_bridge,
    wait_for_uplinks,
    wait_until,
)
from tests.ingest.messages import Traffic

POISON_F_CNT = 13


def refuse_one_frame_counter(database_url: str) -> None:
    """A trigger makes the real database refuse one row, as a value out of a column's range would."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            f"""
            CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.f_cnt = {POISON_F_CNT} THEN
                    RAISE EXCEPTION 'value out of range for this test' USING ERRCODE = '22003';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_poison BEFORE INSERT ON uplink
                FOR EACH ROW EXECUTE FUNCTION refuse_poison();
            """
        )


@BOTH_RECEIVE_PATHS
def test_a_refused_message_is_rejected_and_the_batch_goes_in(
    broker: Broker, fresh_db_url: str, tmp_path: Path, fast_path: bool
) -> None:
    refuse_one_frame_counter(fresh_db_url)
    traffic = Traffic()
    sources = traffic.source_names
    bridge = start_bridge(
        fresh_db_url,
        traffic.sources_toml(broker.host, broker.port),
        tmp_path,
        instance="poison",
        fast_path=fast_path,
    )
    garbage = (traffic.tts_uplink(99)[0], b"{not json")
    try:
        # The garbage shares a batch with the poison: writing one by one builds it again.
        publish(broker.host, broker.port, [*traffic.mixed(30), garbage, *traffic.mixed(60)[30:]])
        assert wait_for_uplinks(fresh_db_url, sources, 59) == 59
        assert wait_until(lambda: scalar(fresh_db_url, "SELECT count(*) FROM rejected_message") == 2)
    finally:
        bridge.stop()
    # Every message counted once, though the batch was built twice.
    assert bridge.counters.total(Outcome.RECEIVED) == 61
    assert bridge.counters.total(Outcome.REJECTED) == 2
    assert bridge.counters.total(Outcome.STORED) == 59
    assert bridge.counters.total(Outcome.DUPLICATE) == 0
    reason = scalar(fresh_db_url, "SELECT reason FROM rejected_message WHERE reason LIKE %s", "could not%")
    assert reason.startswith("could not be stored")
    assert "value out of range for this test" in reason
    assert scalar(fresh_db_url, "SELECT count(*) FROM uplink WHERE f_cnt = %s", POISON_F_CNT) == 0
