"""Revision 0008 on an installation that already has webhooks: the plaintext secrets are
encrypted in the migration itself (or it stops, changing nothing, when no key is set),
credentials leave the stored URLs, and the old delivery log loses its error texts,
keeping only each attempt's class."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from pydantic import SecretStr

from domain.errors import ConfigurationError
from storage.schema import alembic_config, upgrade_database
from storage.secret_box import KEYS_VARIABLE, SecretBox, SecretSettings, new_key
from tests.conftest import create_database, drop_database

PLAINTEXT = "whsec_plaintext-from-before-0008-abcdefghijklmnop"


@pytest.fixture
def database_at_0006(postgres_server: str) -> Iterator[str]:
    url = create_database(postgres_server)
    upgrade_database(url, "0006")
    with psycopg.connect(url) as conn:
        town = conn.execute(
            "INSERT INTO municipality (slug, name) VALUES ('alt', 'Alt') RETURNING id"
        ).fetchone()
        assert town is not None
        subscription = conn.execute(
            "INSERT INTO webhook_subscription (municipality_id, url, secret) "
            "VALUES (%s, %s, %s) RETURNING id",
            (town[0], "https://leitstelle.example.org/", PLAINTEXT),
        ).fetchone()
        assert subscription is not None
        conn.execute(
            "INSERT INTO webhook_subscription (municipality_id, url, secret) VALUES (%s, %s, %s)",
            (town[0], "https://leitstelle:hunter2@leitstelle.example.org/in?x=1", "whsec_other"),
        )
        rule = conn.execute(
            "INSERT INTO alert_rule (municipality_id, name, kind) VALUES (%s, 'x', 'bin_above') RETURNING id",
            (town[0],),
        ).fetchone()
        assert rule is not None
        event = conn.execute(
            "INSERT INTO alert_event (rule_id, municipality_id, subject_kind, subject, message, opened_at) "
            "VALUES (%s, %s, 'device', 'x', 'x', now()) RETURNING id",
            (rule[0], town[0]),
        ).fetchone()
        assert event is not None
        delivery = conn.execute(
            "INSERT INTO webhook_delivery (subscription_id, event_id, transition, next_attempt_at) "
            "VALUES (%s, %s, 'opened', now()) RETURNING id",
            (subscription[0], event[0]),
        ).fetchone()
        assert delivery is not None
        for status_code, error in [
            (None, "ConnectError: [Errno 111] Connection refused"),
            (None, "ConnectTimeout: timed out"),
            (503, "HTTP 503"),
            (204, None),
        ]:
            conn.execute(
                "INSERT INTO webhook_attempt (delivery_id, attempted_at, status_code, error, duration_ms) "
                "VALUES (%s, now(), %s, %s, 1.0)",
                (delivery[0], status_code, error),
            )
    try:
        yield url
    finally:
        drop_database(postgres_server, url)


def test_upgrade_without_a_key_stops_and_changes_nothing(database_at_0006: str) -> None:
    with pytest.raises(ConfigurationError, match=KEYS_VARIABLE):
        upgrade_database(database_at_0006, "0008")
    with psycopg.connect(database_at_0006) as conn:
        assert conn.execute("SELECT secret FROM webhook_subscription ORDER BY id").fetchone() == (PLAINTEXT,)


def test_upgrade_encrypts_stored_secrets_and_reduces_the_log(
    database_at_0006: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key()
    monkeypatch.setenv(KEYS_VARIABLE, key)
    upgrade_database(database_at_0006, "0008")
    with psycopg.connect(database_at_0006) as conn:
        row = conn.execute(
            "SELECT row_to_json(w)::text, secret_ciphertext FROM webhook_subscription w ORDER BY id"
        ).fetchone()
        with_credentials = conn.execute(
            "SELECT row_to_json(w)::text, url, enabled FROM webhook_subscription w ORDER BY id OFFSET 1"
        ).fetchone()
        outcomes = conn.execute(
            "SELECT row_to_json(a)::text, outcome FROM webhook_attempt a ORDER BY id"
        ).fetchall()
    assert row is not None
    assert PLAINTEXT not in row[0]
    box = SecretBox.from_settings(SecretSettings(keys=SecretStr(key)))
    assert box is not None
    assert box.open(row[1]) == PLAINTEXT
    assert [outcome for _, outcome in outcomes] == ["network-error", "timeout", "5xx", "2xx"]
    assert not any("Errno" in text or "HTTP 503" in text for text, _ in outcomes)
    assert with_credentials is not None
    assert "hunter2" not in with_credentials[0]
    assert with_credentials[1:] == ("https://leitstelle.example.org/in?x=1", False)

    # and back: the downgrade decrypts with the same key
    command.downgrade(alembic_config(database_at_0006), "0006")
    with psycopg.connect(database_at_0006) as conn:
        assert conn.execute("SELECT secret FROM webhook_subscription ORDER BY id").fetchone() == (PLAINTEXT,)
