"""Webhook signing secrets are never stored readable.

Whoever reads the database (a Grafana reader, a backup, a dump) must not be able to
forge alerts: the secret is stored only as ciphertext under `LORAKOM_SECRET_KEYS`,
shown once at creation, and the deliveries still carry a signature the receiver can
check with the secret it was shown.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from api.app import create_app
from api.settings import ApiSettings
from cli.jobs import start_alert_jobs
from cli.main import main
from domain.errors import ConfigurationError
from services.alerts import evaluate_alerts
from services.webhook_delivery import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    deliver_notifications,
    signature_is_valid,
)
from services.webhook_targets import WebhookSender, WebhookSettings
from storage.database import create_database_engine
from storage.models_usecases import AlertRule, WebhookSubscription
from storage.secret_box import KEYS_VARIABLE, SecretBox, SecretSettings, new_key
from tests.api.data import RegisteredHooks, Tenant, add_readings, device_id, register

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

LOCAL = WebhookSettings(allow_http=True, allowed_private_targets=["127.0.0.1"])


def box_of(*keys: str) -> SecretBox:
    found = SecretBox.from_settings(SecretSettings(keys=SecretStr(",".join(keys))))
    assert found is not None
    return found


@pytest.fixture
def received() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A local receiver: its URL and what it got."""
    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append((dict(self.headers.items()), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", got
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def local_client(settings: ApiSettings, engine: Engine, hook: RegisteredHooks) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"webhooks": LOCAL}), engine=engine)) as client:
        yield client


def test_the_database_never_holds_the_secret_and_deliveries_still_verify(
    local_client: TestClient,
    engine: Engine,
    settings: ApiSettings,
    tenant: Tenant,
    received: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    url, got = received
    admin = tenant.headers("admin")
    created = local_client.post(tenant.url("/alerts/webhooks"), json={"url": url}, headers=admin)
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    try:
        with psycopg.connect(engine.url.set(drivername="postgresql").render_as_string(False)) as conn:
            rows = conn.execute(
                "SELECT row_to_json(w)::text FROM webhook_subscription w WHERE municipality_id = %s",
                (tenant.id,),
            ).fetchall()
        assert len(rows) == 1
        assert secret not in rows[0][0]
        assert secret.removeprefix("whsec_")[:16] not in rows[0][0]

        # never again through the API
        hook_id = created.json()["id"]
        assert secret not in local_client.get(tenant.url("/alerts/webhooks"), headers=admin).text
        assert (
            secret
            not in local_client.get(tenant.url(f"/alerts/webhooks/{hook_id}/deliveries"), headers=admin).text
        )

        now = datetime.now(UTC)
        bin_eui = register(local_client, tenant)["dev_eui"]
        add_readings(engine, [(now - timedelta(minutes=5), device_id(engine, bin_eui), "fill_level", 97.0)])
        local_client.post(
            tenant.url("/alerts/rules"), json={"name": "Full", "kind": "bin_above"}, headers=admin
        )
        evaluate_alerts(engine, now)
        box = SecretBox.from_settings(settings.secrets)
        assert box is not None
        with WebhookSender(LOCAL) as sender:
            deliver_notifications(engine, sender, box, now)
        headers, body = got[0]
        assert signature_is_valid(secret, int(headers[TIMESTAMP_HEADER]), body, headers[SIGNATURE_HEADER])
    finally:
        with Session(engine) as session:
            session.execute(
                delete(WebhookSubscription).where(WebhookSubscription.municipality_id == tenant.id)
            )
            session.execute(delete(AlertRule).where(AlertRule.municipality_id == tenant.id))
            session.commit()


def test_creating_a_subscription_without_a_key_is_refused(
    settings: ApiSettings, engine: Engine, tenant: Tenant
) -> None:
    keyless = settings.model_copy(update={"secrets": SecretSettings()})
    with TestClient(create_app(keyless, engine=engine)) as client:
        refused = client.post(
            tenant.url("/alerts/webhooks"),
            json={"url": "https://leitstelle.example.org/lorakom"},
            headers=tenant.headers("admin"),
        )
    # The operator has to set the key: the caller is told what is missing, not an internal error.
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert "LORAKOM_SECRET_KEYS" in refused.json()["detail"]
    with Session(engine) as session:
        stored = session.scalars(
            select(WebhookSubscription.id).where(WebhookSubscription.municipality_id == tenant.id)
        ).all()
    assert stored == []


def store_subscriptions(url: str, box: SecretBox, secrets: list[str]) -> None:
    with psycopg.connect(url) as conn:
        town = conn.execute(
            "INSERT INTO municipality (slug, name) VALUES ('secretstadt', 'Secretstadt') RETURNING id"
        ).fetchone()
        assert town is not None
        for secret in secrets:
            conn.execute(
                "INSERT INTO webhook_subscription (municipality_id, url, secret_ciphertext) "
                "VALUES (%s, %s, %s)",
                (town[0], "https://leitstelle.example.org/lorakom", box.seal(secret)),
            )


def stored_ciphertexts(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [
            row[0] for row in conn.execute("SELECT secret_ciphertext FROM webhook_subscription ORDER BY id")
        ]


def test_rotation_moves_every_stored_secret_to_the_newest_key(
    fresh_db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = new_key(), new_key()
    secrets = ["whsec_first", "whsec_second", "whsec_third"]
    store_subscriptions(fresh_db_url, box_of(old), secrets)
    monkeypatch.setenv("LORAKOM_DB_URL", fresh_db_url)
    monkeypatch.setenv(KEYS_VARIABLE, f"{new},{old}")

    assert main(["secrets", "rotate"]) == 0
    assert "3 webhook secret(s)" in capsys.readouterr().out
    assert [box_of(new).open(ciphertext) for ciphertext in stored_ciphertexts(fresh_db_url)] == secrets
    with pytest.raises(ConfigurationError):
        box_of(old).open(stored_ciphertexts(fresh_db_url)[0])


def test_rotation_without_the_old_key_changes_nothing(
    fresh_db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old = new_key()
    store_subscriptions(fresh_db_url, box_of(old), ["whsec_kept"])
    before = stored_ciphertexts(fresh_db_url)
    monkeypatch.setenv("LORAKOM_DB_URL", fresh_db_url)
    monkeypatch.setenv(KEYS_VARIABLE, new_key())
    assert main(["secrets", "rotate"]) == 2
    assert KEYS_VARIABLE in capsys.readouterr().err
    assert stored_ciphertexts(fresh_db_url) == before
    monkeypatch.delenv(KEYS_VARIABLE)
    assert main(["secrets", "rotate"]) == 2
    assert f"needs {KEYS_VARIABLE}" in capsys.readouterr().err


def test_jobs_refuse_to_start_without_the_key_that_opens_the_stored_secrets(fresh_db_url: str) -> None:
    """At start, not minutes later as deliveries that silently never go out."""
    key = new_key()
    store_subscriptions(fresh_db_url, box_of(key), ["whsec_needed"])
    engine = create_database_engine(fresh_db_url, pool_size=1)
    stop = threading.Event()
    jobs = None
    try:
        with pytest.raises(ConfigurationError, match=f"{KEYS_VARIABLE}, which is not set"):
            start_alert_jobs(engine, stop, secrets=SecretSettings())
        with pytest.raises(ConfigurationError, match="cannot be decrypted"):
            start_alert_jobs(engine, stop, secrets=SecretSettings(keys=SecretStr(new_key())))
        jobs = start_alert_jobs(engine, stop, secrets=SecretSettings(keys=SecretStr(key)))
        assert jobs.box is not None
    finally:
        stop.set()
        if jobs is not None:
            jobs.join()
        engine.dispose()


def test_a_secret_no_key_opens_holds_back_only_its_own_delivery(
    fresh_db_url: str, received: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    """Written by a process with another key: that delivery waits, every other one goes out."""
    url, got = received
    ours, foreign = new_key(), new_key()
    with psycopg.connect(fresh_db_url) as conn:
        town = conn.execute("INSERT INTO municipality (slug, name) VALUES ('t', 'T') RETURNING id").fetchone()
        assert town is not None
        device = conn.execute(
            "INSERT INTO device (municipality_id, dev_eui, name, decoder_source) "
            "VALUES (%s, '70b3d57ed0000001', 'Bin', 'network') RETURNING id",
            (town[0],),
        ).fetchone()
        assert device is not None
        conn.execute(
            "INSERT INTO device_state (device_id, quantity, time, value) "
            "VALUES (%s, 'fill_level', now(), 97)",
            (device[0],),
        )
        conn.execute(
            "INSERT INTO alert_rule (municipality_id, name, kind) VALUES (%s, 'Full', 'bin_above')",
            (town[0],),
        )
        for key in (foreign, ours):
            conn.execute(
                "INSERT INTO webhook_subscription (municipality_id, url, secret_ciphertext) "
                "VALUES (%s, %s, %s)",
                (town[0], url, box_of(key).seal("whsec_x")),
            )
    engine = create_database_engine(fresh_db_url, pool_size=1)
    try:
        now = datetime.now(UTC)
        assert evaluate_alerts(engine, now).opened == 1
        with WebhookSender(LOCAL) as sender:
            result = deliver_notifications(engine, sender, box_of(ours), now)
    finally:
        engine.dispose()
    assert (result.delivered, result.unsigned, result.retrying, result.failed) == (1, 1, 0, 0)
    assert len(got) == 1
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute(
            "SELECT status, attempts FROM webhook_delivery ORDER BY subscription_id"
        ).fetchall() == [
            ("pending", 0),
            ("delivered", 1),
        ]
