"""Streamed exports against a real uvicorn with a pool of two connections.

A client that goes away mid-stream, or stops reading, must leave the pool as it found it:
otherwise a handful of aborted exports starves every other municipality's requests.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, insert, select
from sqlalchemy.orm import Session

from api.app import create_app
from api.settings import ApiSettings
from cli.backing_services import free_port
from services.device_import import import_devices
from storage.database import DatabaseSettings, sqlalchemy_url
from storage.models import Device, DeviceState
from tests.api.data import Tenant, new_dev_eui

POOL_SIZE = 2
DEVICES = 3000
ABORTED_EXPORTS = 100
T0 = datetime(2026, 11, 2, tzinfo=UTC)


@dataclass(frozen=True)
class Server:
    port: int
    engine: Engine


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for the server to notice a client that went away (a liveness bound, not a speed target)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture
def server(migrated_db_url: str) -> Iterator[Server]:
    """The app under uvicorn on a free port, on a pool of two connections and no overflow."""
    engine = create_engine(
        sqlalchemy_url(migrated_db_url), pool_size=POOL_SIZE, max_overflow=0, pool_timeout=2
    )
    settings = ApiSettings(database=DatabaseSettings(url=SecretStr(migrated_db_url)), export_page_rows=500)
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, engine=engine), host="127.0.0.1", port=port, log_level="warning", ws="none"
    )
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, name="aborted-streams-api", daemon=True)
    thread.start()
    until(lambda: uvicorn_server.started or not thread.is_alive(), "uvicorn did not start")
    assert thread.is_alive(), "uvicorn stopped while starting"
    try:
        yield Server(port, engine)
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=30)
        engine.dispose()


@pytest.fixture
def fleet(engine: Engine, tenant: Tenant) -> str:
    """Enough devices and latest values that no export fits in the sockets' buffers; one DevEUI."""
    lines = ["dev_eui,name,use_case,latitude,longitude"]
    lines += [f"{new_dev_eui()},Sensor {i},waste,48.{i:04d},9.{i:04d}" for i in range(DEVICES)]
    with Session(engine) as session:
        report = import_devices(session, municipality_id=tenant.id, lines=lines)
        session.commit()
        assert report.created == DEVICES
        devices = session.execute(
            select(Device.id, Device.dev_eui).where(Device.municipality_id == tenant.id)
        ).all()
        session.execute(
            insert(DeviceState),
            [
                {"device_id": device, "quantity": quantity, "time": T0, "value": -1.5}
                for device, _ in devices
                for quantity in ("fill_percent", "battery")
            ],
        )
        session.commit()
    return str(devices[0].dev_eui)


def export_paths(tenant: Tenant, dev_eui: str) -> list[str]:
    # One-second buckets over three days: 259,200 rows, some 20 MB of CSV.
    history = {
        "dev_eui": dev_eui,
        "quantity": "fill_percent",
        "start": T0.isoformat(),
        "end": (T0 + timedelta(days=3)).isoformat(),
        "bucket": "1s",
        "format": "csv",
    }
    return [
        tenant.url("/readings/history/export?" + urlencode(history)),
        tenant.url("/readings/latest/export?format=csv"),
        tenant.url("/readings/latest/export?format=geojson"),
        tenant.url("/devices/export"),
    ]


def open_export(port: int, path: str, key: str) -> tuple[socket.socket, bytes]:
    """Send the request and read until the headers and the first bytes of the body came."""
    connection = socket.socket()
    # A small receive window, so that the server cannot have sent the whole body already.
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    connection.connect(("127.0.0.1", port))
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n"
    connection.sendall(request.encode())
    received = b""
    while b"\r\n\r\n" not in received or len(received.partition(b"\r\n\r\n")[2]) < 100:
        chunk = connection.recv(4096)
        if not chunk:  # a short answer (an error): the test looks at it
            break
        received += chunk
    return connection, received


def pool_is_whole(engine: Engine) -> bool:
    return engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def others_are_answered(server: Server, neighbour: Tenant) -> None:
    """Many requests at once, more than the pool has connections: each waits its turn and gets 200."""
    url = f"http://127.0.0.1:{server.port}{neighbour.url('/devices')}"
    with (
        httpx.Client(headers=neighbour.headers("viewer"), timeout=60) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        statuses = list(pool.map(lambda _: client.get(url).status_code, range(16)))
    assert statuses == [200] * 16


def test_aborted_exports_give_back_their_connections(
    server: Server, fleet: str, tenant: Tenant, neighbour: Tenant
) -> None:
    paths = itertools.cycle(export_paths(tenant, fleet))
    key = tenant.keys["viewer"]
    for _ in range(ABORTED_EXPORTS):
        connection, received = open_export(server.port, next(paths), key)
        connection.close()
        assert received.startswith(b"HTTP/1.1 200"), received[:300]
    until(lambda: pool_is_whole(server.engine), "aborted exports still hold connections")
    others_are_answered(server, neighbour)
    assert pool_is_whole(server.engine)


def test_a_stalled_reader_holds_no_connection(
    server: Server, fleet: str, tenant: Tenant, neighbour: Tenant
) -> None:
    """A reader that stops reading (or reads a byte a minute) keeps its socket, not a connection."""
    stalled = [
        open_export(server.port, path, tenant.keys["viewer"])[0] for path in export_paths(tenant, fleet)
    ]
    try:
        until(lambda: pool_is_whole(server.engine), "a stalled export holds a connection")
        others_are_answered(server, neighbour)
    finally:
        for connection in stalled:
            connection.close()
