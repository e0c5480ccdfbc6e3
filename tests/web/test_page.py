"""The technicians' page in a real headless Chromium, against the real app on a free port.

The app runs under uvicorn with a database of its own; Chromium opens the page with
the key and municipality in the fragment (as a link sent to a phone would), lets the
page's requests finish (`--virtual-time-budget`) and prints the DOM it rendered.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy.orm import Session

from api.app import create_app
from api.settings import ApiSettings
from storage.api_keys import create_api_key
from storage.database import DatabaseSettings, create_database_engine, libpq_url
from storage.schema import upgrade_database
from tests.conftest import create_database, drop_database, free_port

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
STATIC = Path(__file__).resolve().parents[2] / "api/static"
TOWN = "feldstadt"
NOW = datetime.now(UTC)


@dataclass(frozen=True)
class Served:
    base_url: str
    key: str
    foreign_key: str


def chromium(binary: Path = CHROMIUM) -> Path:
    if not binary.exists():
        pytest.fail(
            f"the page tests drive headless Chromium at {binary}, which is not installed "
            "(Debian/Ubuntu: sudo apt-get install -y chromium)"
        )
    return binary


def insert_field_data(url: str) -> None:
    with psycopg.connect(libpq_url(url)) as conn:

        def one(sql: str, params: tuple[Any, ...]) -> Any:
            row = conn.execute(sql, params).fetchone()
            assert row is not None
            return row[0]

        town = one("INSERT INTO municipality (slug, name) VALUES (%s, 'Feldstadt') RETURNING id", (TOWN,))
        other = one(
            "INSERT INTO municipality (slug, name) VALUES ('nachbarort', 'Nachbarort') RETURNING id", ()
        )
        conn.execute(
            "INSERT INTO gateway (gateway_id, municipality_id, name, first_seen_at, last_seen_at, online)"
            " VALUES ('aa555a0000000001', %s, 'Gateway Rathausdach', %s, %s, true),"
            " ('aa555a0000000002', %s, 'Gateway Feuerwache', %s, %s, false)",
            (town, NOW - timedelta(days=30), NOW - timedelta(minutes=3), town, NOW - timedelta(days=30),
             NOW - timedelta(hours=7)),
        )  # fmt: skip

        def device(eui: str, name: str, use_case: str, metadata: dict[str, Any], town_id: int = town) -> int:
            return int(
                one(
                    "INSERT INTO device (municipality_id, dev_eui, name, use_case, metadata)"
                    " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                    (town_id, eui, name, use_case, json.dumps(metadata)),
                )
            )

        bin_ = device("70b3d57ed0000001", "Container Marktplatz", "waste", {"expected_interval_s": 1800})
        tree = device("70b3d57ed0000002", "Linde Schulhof", "soil", {"expected_interval_s": 900})
        device("70b3d57ed0000003", "Parkplatz Bahnhof 4", "parking", {})
        foreign = device("70b3d57ed0000004", "Fremder Sensor", "waste", {}, other)
        states = [
            (bin_, "fill_level", 73.4, NOW - timedelta(minutes=10)),
            (bin_, "battery", 12.0, NOW - timedelta(minutes=10)),
            (tree, "soil_moisture", 21.5, NOW - timedelta(hours=5)),  # 5 h > 2.5 × 15 min: silent
            (tree, "battery", 88.0, NOW - timedelta(hours=5)),
            (foreign, "fill_level", 11.0, NOW),
        ]
        for device_id, quantity, value, moment in states:
            conn.execute(
                "INSERT INTO device_state (device_id, quantity, time, value) VALUES (%s, %s, %s, %s)",
                (device_id, quantity, moment, value),
            )
        conn.execute(
            "INSERT INTO device_activity (dev_eui, municipality_id, source, first_seen_at, last_seen_at,"
            " uplink_count, last_payload, last_gateway_id, last_rssi_dbm, last_snr_db)"
            " VALUES ('a840410000000abc', %s, 'feldstadt-cs', %s, %s, 12, '\\x0102', 'aa555a0000000001',"
            " -97, 6.5)",
            (town, NOW - timedelta(days=2), NOW - timedelta(minutes=20)),
        )


@pytest.fixture(scope="module")
def served(postgres_server: str) -> Iterator[Served]:
    url = create_database(postgres_server, prefix="lorakom_page")
    upgrade_database(url)
    insert_field_data(url)
    engine = create_database_engine(url)
    with Session(engine) as session:
        key, _ = create_api_key(session, municipality_slug=TOWN, role="technician", name="page test")
        foreign_key, _ = create_api_key(session, municipality_slug="nachbarort", role="viewer", name="other")
        session.commit()
    settings = ApiSettings(database=DatabaseSettings(url=SecretStr(url)))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, engine=engine), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="page-test-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{port}", key, foreign_key)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
        drop_database(postgres_server, url)


def render(url: str) -> str:
    """The DOM after the page's scripts and requests have run, as Chromium prints it."""
    with tempfile.TemporaryDirectory(prefix="lorakom-chromium-") as profile:
        result = subprocess.run(
            [
                str(chromium()),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--window-size=412,915",  # a phone
                "--virtual-time-budget=15000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
    dom = result.stdout.decode("utf-8", errors="replace")
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    assert "<body" in dom, result.stderr.decode(errors="replace")[-2000:]
    return dom


def item(dom: str, attribute: str, value: str) -> str:
    """The text of one `<li>` of the rendered lists, tags stripped."""
    match = re.search(rf'<li [^>]*{attribute}="{re.escape(value)}"[^>]*>(.*?)</li>', dom, flags=re.DOTALL)
    assert match, f"no list item with {attribute}={value!r} in the page"
    return re.sub(r"<[^>]+>", " ", match.group(1))


def test_page_shows_gateways_devices_and_unclaimed(served: Served) -> None:
    dom = render(f"{served.base_url}/#key={served.key}&m={TOWN}")
    assert 'data-state="ready"' in dom, "the page did not finish loading"

    online = item(dom, "data-gateway-id", "aa555a0000000001")
    assert "Gateway Rathausdach" in online
    assert "online" in online
    offline = item(dom, "data-gateway-id", "aa555a0000000002")
    assert "Gateway Feuerwache" in offline
    assert "offline" in offline
    assert "7 h ago" in offline

    bin_ = item(dom, "data-dev-eui", "70b3d57ed0000001")
    assert "Container Marktplatz" in bin_
    assert "73.4 %" in bin_  # the latest fill level
    assert "battery 12 %" in bin_
    assert "battery low" in bin_
    assert "silent" not in bin_
    tree = item(dom, "data-dev-eui", "70b3d57ed0000002")
    assert "Linde Schulhof" in tree
    assert "silent" in tree
    assert "21.5 %" in tree
    never = item(dom, "data-dev-eui", "70b3d57ed0000003")
    assert "Parkplatz Bahnhof 4" in never
    assert "never" in never

    unclaimed = item(dom, "data-dev-eui", "a840410000000abc")
    assert "12 uplinks" in unclaimed
    assert "-97 dBm" in unclaimed

    assert "Fremder Sensor" not in dom
    assert f"key={served.key}" not in dom


def test_refused_key_shows_the_sign_in_form(served: Served) -> None:
    dom = render(f"{served.base_url}/#key={served.foreign_key}&m={TOWN}")
    assert 'data-state="setup"' in dom
    assert "Container Marktplatz" not in dom


def test_page_and_assets_are_served(served: Served) -> None:
    with httpx.Client(base_url=served.base_url) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        for asset, kind in (("app.js", "javascript"), ("app.css", "text/css")):
            response = client.get(f"/static/{asset}")
            assert response.status_code == 200
            assert kind in response.headers["content-type"]
        assert "/" not in client.get("/openapi.json").json()["paths"]


def test_page_loads_nothing_from_elsewhere() -> None:
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(src|href)=\"(https?:)?//", text), f"{path.name} loads from another host"
        assert "http://" not in text, path.name
        assert "https://" not in text, path.name
        assert "innerHTML" not in text, f"{path.name}: put API data into the page as text only"


def test_missing_chromium_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        chromium(tmp_path / "chromium")
