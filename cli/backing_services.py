"""Finding or starting the backing services lorakom needs: a PostgreSQL server and an MQTT broker.

The demo and the tests run on machines with nothing installed; production names
its servers. This module decides which, in one place: a configured URL wins, a
local server that answers comes next, an embedded one is the fallback.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from storage.database import DatabaseSettings
from storage.embedded import EmbeddedPostgres

log = logging.getLogger(__name__)

DEMO_DATABASE = "lorakom"


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_database(server_url: str, name: str) -> str:
    head, _, query = server_url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


def ensure_database_exists(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server_url, name)


@contextmanager
def database(settings: DatabaseSettings) -> Iterator[str]:
    """The database URL to use: LORAKOM_DB_URL, else an embedded server in `embedded_dir`."""
    if settings.url is not None:
        yield settings.url.get_secret_value()
        return
    server = EmbeddedPostgres(Path(settings.embedded_dir))
    server_url = server.start()
    try:
        yield ensure_database_exists(server_url, DEMO_DATABASE)
    finally:
        server.stop()


class EmbeddedBroker:
    """An amqtt broker on a free port in a background thread, for machines without Mosquitto."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lorakom-broker", daemon=True)
        self._broker: object | None = None

    def start(self) -> None:
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
            "topic-check": {"enabled": False},
        }
        self._thread.start()

        async def start_broker() -> object:
            broker = Broker(config, loop=self._loop)
            await broker.start()
            return broker

        self._broker = asyncio.run_coroutine_threadsafe(start_broker(), self._loop).result(timeout=15)

    def stop(self) -> None:
        if self._broker is not None:
            broker = self._broker
            asyncio.run_coroutine_threadsafe(broker.shutdown(), self._loop).result(timeout=15)  # type: ignore[attr-defined]
        self._loop.call_soon_threadsafe(self._loop.stop)


@contextmanager
def mqtt_broker(host: str = "127.0.0.1", port: int = 1883) -> Iterator[tuple[str, int]]:
    """The local broker on 1883 when it answers, else an embedded amqtt broker on a free port."""
    if port_answers(host, port):
        yield host, port
        return
    embedded_port = free_port()
    log.info("no MQTT broker on %s:%s; starting an embedded one on port %s", host, port, embedded_port)
    broker = EmbeddedBroker(embedded_port)
    broker.start()
    try:
        yield "127.0.0.1", embedded_port
    finally:
        broker.stop()
