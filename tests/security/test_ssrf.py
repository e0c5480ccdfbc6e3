"""Outgoing alert webhooks cannot be aimed inward.

An admin chooses the URL, the platform sends the POST from inside its network. Every
spelling of an inward address is refused when the subscription is created (422) and
again when a delivery is sent (the DNS answer may have changed since, or the row may
be older than the check); the connection goes to the address that was checked; the
delivery log says only the class of what happened.

The receivers here are real HTTP(S) servers on 127.0.0.1: each refusal is shown by a
server that would have answered and received nothing.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from api.settings import ApiSettings
from services.alerts import evaluate_alerts
from services.webhook_delivery import deliver_notifications
from services.webhook_targets import (
    IPAddress,
    Outcome,
    TargetRefused,
    WebhookSender,
    WebhookSettings,
    check_new_target,
    refusal,
)
from storage.models_usecases import AlertRule, WebhookSubscription
from storage.secret_box import SecretBox
from tests.api.data import Tenant, add_readings, device_id, register

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

HOSTILE_URLS = [
    # cloud metadata, in every spelling
    "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "https://2852039166/latest/meta-data/",
    "https://0xa9fea9fe/latest/meta-data/",
    "https://0251.0376.0251.0376/",
    "https://[::ffff:169.254.169.254]/",
    "https://[::ffff:a9fe:a9fe]/",
    "https://[64:ff9b::a9fe:a9fe]/",
    "https://[fd00:ec2::254]/latest/meta-data/",
    "https://100.100.100.200/latest/meta-data/",
    "https://192.0.0.192/opc/v2/instance/",
    # loopback: the database next door
    "https://127.0.0.1:5432/",
    "https://127.1:5432/",
    "https://127.0.1:5432/",
    "https://2130706433:5432/",
    "https://0x7f000001:5432/",
    "https://0x7f.0.0.1/",
    "https://0177.0.0.1/",
    "https://017700000001/",
    "https://127.000.000.001/",
    "https://127.0.0.1.:5432/",
    "https://127.255.255.254/",
    "https://localhost:5432/",
    "https://localhost./",
    "https://LocalHost:8000/",
    "https://[::1]:5432/",
    "https://[0:0:0:0:0:0:0:1]/",
    "https://[::ffff:127.0.0.1]:5432/",
    "https://[::ffff:7f00:1]/",
    "https://[::127.0.0.1]/",
    "https://[2002:7f00:1::]/",
    "https://[64:ff9b::7f00:1]/",
    # unspecified, which reaches this host too
    "https://0.0.0.0:5432/",
    "https://0:5432/",
    "https://[::]/",
    # private, shared and reserved ranges
    "https://10.0.0.1/",
    "https://10.255.255.255/",
    "https://172.16.0.1/",
    "https://172.31.255.254/",
    "https://192.168.178.1/",
    "https://100.64.0.1/",
    "https://100.127.255.254/",
    "https://198.18.0.1/",
    "https://192.0.2.10/",
    "https://240.0.0.1/",
    "https://255.255.255.255/",
    "https://224.0.0.1/",
    "https://[fc00::1]/",
    "https://[fd12:3456::1]/",
    "https://[fe80::1]/",
    "https://[fec0::1]/",
    "https://[ff02::1]/",
    "https://[2001:db8::1]/",
    "https://[2001::1]/",
    "https://[::ffff:10.0.0.1]/",
    "https://[::ffff:192.168.0.1]/",
    "https://[2002:c0a8:1::]/",
    # credentials in the URL, plain http, other schemes
    "https://user:password@example.org/",
    "https://user@example.org/",
    "https://:password@example.org/",
    "http://example.org/alerts",
    "ftp://example.org/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:5432/",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_hostile_url_is_refused_at_creation(client: TestClient, tenant: Tenant, url: str) -> None:
    response = client.post(tenant.url("/alerts/webhooks"), json={"url": url}, headers=tenant.headers("admin"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    listed = client.get(tenant.url("/alerts/webhooks"), headers=tenant.headers("admin")).json()["items"]
    assert listed == []


def test_a_refusal_says_why(client: TestClient, tenant: Tenant) -> None:
    admin = tenant.headers("admin")
    metadata = client.post(
        tenant.url("/alerts/webhooks"), json={"url": "https://169.254.169.254/"}, headers=admin
    ).json()
    assert "link-local" in metadata["detail"]
    credentials = client.post(
        tenant.url("/alerts/webhooks"), json={"url": "https://u:p@example.org/"}, headers=admin
    ).json()
    assert "credentials" in credentials["detail"]


def test_a_public_receiver_is_accepted(client: TestClient, tenant: Tenant, engine: Engine) -> None:
    """The policy refuses what it must and nothing more; the secret comes once."""
    created = client.post(
        tenant.url("/alerts/webhooks"),
        json={"url": "https://leitstelle.example.org/lorakom"},
        headers=tenant.headers("admin"),
    )
    assert created.status_code == 201, created.text
    assert created.json()["secret"].startswith("whsec_")
    remove_subscriptions(engine, tenant)


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "2a00:1450:4001:82b::200e", "2606:4700::1111", "64:ff9b::808:808"],
)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


# --- at delivery: real servers that must receive nothing ----------------------------------------


@dataclass
class Receiver:
    """A local server; `statuses` are answered in turn, then 204. Records what it received."""

    port: int = 0
    statuses: list[int] = field(default_factory=list)
    location: str | None = None
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)


def serve(found: Receiver, tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            found.received.append((dict(self.headers.items()), body))
            self.send_response(found.statuses.pop(0) if found.statuses else 204)
            if found.location:
                self.send_header("Location", found.location)
            self.send_header("Content-Type", "text/plain")
            answer = b"FATAL: password authentication failed for user postgres"
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    found.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve(Receiver())


@pytest.fixture
def second_receiver() -> Iterator[Receiver]:
    yield from serve(Receiver())


PLAIN_HTTP_ONLY = WebhookSettings(allow_http=True)
"""http allowed (the local servers speak it), but no private target: what must still be refused."""


def post(settings: WebhookSettings, url: str, **options: Any) -> Outcome:
    with WebhookSender(settings, **options) as sender:
        return sender.post(url, b'{"probe":1}', {"Content-Type": "application/json"})


@pytest.mark.parametrize(
    "spelling",
    [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.0.0.1.",
        "localhost",
        "localhost.",
        "LOCALHOST",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "0.0.0.0",
    ],
)
def test_delivery_to_any_spelling_of_this_host_is_refused(receiver: Receiver, spelling: str) -> None:
    outcome = post(PLAIN_HTTP_ONLY, f"http://{spelling}:{receiver.port}/alerts")
    assert outcome is Outcome.REFUSED_BY_POLICY
    assert receiver.received == []


def test_credentials_and_plain_http_are_refused_at_delivery(receiver: Receiver) -> None:
    allowed = WebhookSettings(allow_http=True, allowed_private_targets=["127.0.0.1"])
    assert post(allowed, f"http://user:pw@127.0.0.1:{receiver.port}/") is Outcome.REFUSED_BY_POLICY
    only_private = WebhookSettings(allowed_private_targets=["127.0.0.1"])
    assert post(only_private, f"http://127.0.0.1:{receiver.port}/") is Outcome.REFUSED_BY_POLICY
    assert receiver.received == []


def resolving(*answers: list[str]) -> Any:
    """A resolver that gives each answer in turn (the last one from then on), and counts calls."""
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[IPAddress]:
        calls.append(host)
        answer = answers[min(len(calls), len(answers)) - 1]
        return [ipaddress.ip_address(address) for address in answer]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def test_a_name_that_resolves_inward_later_is_refused_at_delivery(receiver: Receiver) -> None:
    """DNS rebinding: public when the subscription was made, loopback when the POST goes."""
    resolver = resolving(["93.184.216.34"], ["127.0.0.1"])
    url = f"http://hooks.example.org:{receiver.port}/alerts"
    check_new_target(url, PLAIN_HTTP_ONLY, resolver)  # accepted: public at creation
    assert post(PLAIN_HTTP_ONLY, url, resolver=resolver) is Outcome.REFUSED_BY_POLICY
    assert receiver.received == []


def test_every_resolved_address_is_checked_not_only_the_first(receiver: Receiver) -> None:
    resolver = resolving(["93.184.216.34", "127.0.0.1"])
    with pytest.raises(TargetRefused):
        check_new_target("https://hooks.example.org/", WebhookSettings(), resolver)
    url = f"http://hooks.example.org:{receiver.port}/alerts"
    assert post(PLAIN_HTTP_ONLY, url, resolver=resolver) is Outcome.REFUSED_BY_POLICY
    assert receiver.received == []


def test_the_connection_goes_to_the_address_that_was_checked(receiver: Receiver) -> None:
    """Resolved once, by the check; the name is never handed to another resolver.

    `receiver.test` is in no DNS: had the HTTP client resolved it again itself, the
    POST would have failed. The receiver still sees the name in `Host`.
    """
    resolver = resolving(["127.0.0.1"])
    allowed = WebhookSettings(allow_http=True, allowed_private_targets=["127.0.0.0/8"])
    outcome = post(allowed, f"http://receiver.test:{receiver.port}/alerts", resolver=resolver)
    assert outcome is Outcome.SUCCESS
    assert resolver.calls == ["receiver.test"]
    headers, body = receiver.received[0]
    assert headers["Host"] == f"receiver.test:{receiver.port}"
    assert json.loads(body) == {"probe": 1}


def test_redirects_are_not_followed(receiver: Receiver, second_receiver: Receiver) -> None:
    receiver.statuses = [307]
    receiver.location = f"http://127.0.0.1:{second_receiver.port}/"
    allowed = WebhookSettings(allow_http=True, allowed_private_targets=["127.0.0.1"])
    assert post(allowed, f"http://127.0.0.1:{receiver.port}/") is Outcome.REDIRECT
    assert len(receiver.received) == 1
    assert second_receiver.received == []


# --- TLS: the certificate is checked for the name, not for the pinned address ----------------


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for `receiver.test` only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "receiver.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("receiver.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    found = Certificate(folder / "cert.pem", folder / "key.pem")
    found.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    found.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return found


@pytest.fixture
def tls_receiver(certificate: Certificate) -> Iterator[Receiver]:
    found = Receiver()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert, certificate.key)

    def remember(sock: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext) -> None:
        found.server_names.append(server_name)

    context.sni_callback = remember  # type: ignore[assignment]
    yield from serve(found, tls=context)


def test_https_to_a_pinned_address_checks_the_certificate_for_the_name(
    tls_receiver: Receiver, certificate: Certificate
) -> None:
    trusted = ssl.create_default_context(cafile=str(certificate.cert))
    allowed = WebhookSettings(allowed_private_targets=["127.0.0.1"])
    resolver = resolving(["127.0.0.1"])
    url = f"https://receiver.test:{tls_receiver.port}/alerts"
    assert post(allowed, url, resolver=resolver, verify=trusted) is Outcome.SUCCESS
    assert tls_receiver.server_names == ["receiver.test"]
    assert tls_receiver.received[0][0]["Host"] == f"receiver.test:{tls_receiver.port}"

    # The same server under another name: its certificate does not name that one.
    other = f"https://other.test:{tls_receiver.port}/alerts"
    assert post(allowed, other, resolver=resolver, verify=trusted) is Outcome.NETWORK_ERROR
    assert len(tls_receiver.received) == 1


# --- the whole path: stored subscription, delivery, log ----------------------------------------


def deliver_everything_due(engine: Engine, sender: WebhookSender, box: SecretBox, at: dt.datetime) -> None:
    """Run deliveries until none is due at `at`, as the delivery job does over its runs.

    One run takes a batch of the oldest due deliveries, and the session's database holds
    those of every test before this one: a single run need not reach this test's own.
    Every delivery a run takes is due again only after `at` (lease or backoff), so this ends.
    """
    while True:
        result = deliver_notifications(engine, sender, box, at)
        if result.delivered + result.retrying + result.failed + result.unsigned == 0:
            return


def remove_subscriptions(engine: Engine, tenant: Tenant) -> None:
    """Deliveries run over every stored subscription: leave none behind for other tests."""
    with Session(engine) as session:
        session.execute(delete(WebhookSubscription).where(WebhookSubscription.municipality_id == tenant.id))
        session.execute(delete(AlertRule).where(AlertRule.municipality_id == tenant.id))
        session.commit()


@pytest.fixture
def box(settings: ApiSettings) -> SecretBox:
    found = SecretBox.from_settings(settings.secrets)
    assert found is not None
    return found


def test_a_stored_inward_url_is_refused_at_delivery_and_logged_as_a_class_only(
    client: TestClient, engine: Engine, tenant: Tenant, receiver: Receiver, box: SecretBox
) -> None:
    """A row older than the check (or written around it) still cannot reach inward."""
    now = dt.datetime.now(dt.UTC)
    admin = tenant.headers("admin")
    bin_eui = register(client, tenant)["dev_eui"]
    add_readings(engine, [(now - dt.timedelta(minutes=5), device_id(engine, bin_eui), "fill_level", 97.0)])
    with Session(engine) as session:
        session.add(
            WebhookSubscription(
                municipality_id=tenant.id,
                url=f"http://localhost:{receiver.port}/alerts",
                secret_ciphertext=box.seal("whsec_stored-before-the-check"),
            )
        )
        session.commit()
    try:
        client.post(tenant.url("/alerts/rules"), json={"name": "Full", "kind": "bin_above"}, headers=admin)
        evaluate_alerts(engine, now)
        with WebhookSender(PLAIN_HTTP_ONLY) as sender:
            deliver_everything_due(engine, sender, box, now)
        hooks = client.get(tenant.url("/alerts/webhooks"), headers=admin).json()["items"]
        log = client.get(tenant.url(f"/alerts/webhooks/{hooks[0]['id']}/deliveries"), headers=admin).json()
        attempts = log["items"][0]["log"]
        assert [attempt["outcome"] for attempt in attempts] == ["refused-by-policy"]
        assert set(attempts[0]) == {"attempted_at", "outcome", "duration_ms"}
        assert receiver.received == []
    finally:
        remove_subscriptions(engine, tenant)


def test_an_allowed_local_receiver_gets_its_delivery_and_its_answer_is_not_kept(
    client: TestClient, engine: Engine, tenant: Tenant, receiver: Receiver, box: SecretBox
) -> None:
    """What the closed-network setting is for; the server's answer text stays out of the log."""
    now = dt.datetime.now(dt.UTC)
    admin = tenant.headers("admin")
    bin_eui = register(client, tenant)["dev_eui"]
    add_readings(engine, [(now - dt.timedelta(minutes=5), device_id(engine, bin_eui), "fill_level", 97.0)])
    url = f"http://127.0.0.1:{receiver.port}/alerts"
    with Session(engine) as session:
        session.add(
            WebhookSubscription(municipality_id=tenant.id, url=url, secret_ciphertext=box.seal("whsec_x"))
        )
        session.commit()
    receiver.statuses = [500]
    try:
        client.post(tenant.url("/alerts/rules"), json={"name": "Full", "kind": "bin_above"}, headers=admin)
        evaluate_alerts(engine, now)
        local = WebhookSettings(allow_http=True, allowed_private_targets=["127.0.0.1"])
        with WebhookSender(local) as sender:
            deliver_everything_due(engine, sender, box, now)
            deliver_everything_due(engine, sender, box, now + dt.timedelta(minutes=1))
        hooks = client.get(tenant.url("/alerts/webhooks"), headers=admin).json()["items"]
        log = client.get(tenant.url(f"/alerts/webhooks/{hooks[0]['id']}/deliveries"), headers=admin)
        assert [attempt["outcome"] for attempt in log.json()["items"][0]["log"]] == ["5xx", "2xx"]
        assert "password" not in log.text
        assert len(receiver.received) == 2
    finally:
        remove_subscriptions(engine, tenant)


def test_a_closed_network_names_its_exceptions_and_nothing_else() -> None:
    """Named hosts and ranges are allowed; neighbours of them, and non-receivers, are not."""
    closed = WebhookSettings(allowed_private_targets=["10.20.0.0/16", "Leitstelle.Intern."])
    private = resolving(["192.168.7.7"])
    check_new_target("https://leitstelle.intern/in", closed, private)
    check_new_target("https://10.20.3.4/in", closed)
    for refused in ("https://10.21.3.4/in", "https://169.254.169.254/", "https://127.0.0.1/"):
        with pytest.raises(TargetRefused):
            check_new_target(refused, closed)
    with pytest.raises(TargetRefused):
        check_new_target("https://other.intern/in", closed, private)
    with pytest.raises(TargetRefused):
        check_new_target("https://leitstelle.intern/in", closed, resolving(["0.0.0.0"]))
    with pytest.raises(TargetRefused, match="https"):
        check_new_target("http://10.20.3.4/in", closed)
    with pytest.raises(ValueError, match="neither"):
        WebhookSettings(allowed_private_targets=["not a host!"])
