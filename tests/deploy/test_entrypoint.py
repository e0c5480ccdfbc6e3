"""The image's start-up, run here for real: entrypoint, production command, health check.

No Docker engine is needed: the container's entrypoint script runs with this
environment's `lorakom`, against a real PostgreSQL and Mosquitto, with the
ChirpStack source of the sources example pointed at the local broker.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from storage.database import libpq_url
from tests.conftest import Broker, create_database, drop_database, free_port

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy/docker-entrypoint.sh"
DOCKERFILE = ROOT / "Dockerfile"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(toml_value(item) for item in value) + "]"


def local_sources(path: Path, broker: Broker) -> None:
    """The example's ChirpStack source, on the test broker and without credentials."""
    example = tomllib.loads((ROOT / "deploy/sources.example.toml").read_text(encoding="utf-8"))
    (source,) = [source for source in example["source"] if source["kind"] == "chirpstack-v4"]
    source = {key: value for key, value in source.items() if key not in {"username", "password_env"}}
    source |= {"host": broker.host, "port": broker.port, "client_id": f"entrypoint-{uuid.uuid4().hex[:8]}"}
    lines = ["[[source]]", *(f"{key} = {toml_value(value)}" for key, value in source.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def healthcheck_command() -> list[str]:
    """The Dockerfile's HEALTHCHECK command, with this interpreter for the image's `python`."""
    match = re.search(
        r"^HEALTHCHECK .*?CMD (\[.*?\])$", DOCKERFILE.read_text(), flags=re.MULTILINE | re.DOTALL
    )
    assert match, "the Dockerfile has no HEALTHCHECK in exec form"
    command: list[str] = json.loads(match.group(1))
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


@pytest.fixture
def empty_db_url(postgres_server: str) -> Iterator[str]:
    """Not migrated: the entrypoint must do that."""
    url = create_database(postgres_server, prefix="lorakom_entrypoint")
    try:
        yield url
    finally:
        drop_database(postgres_server, url)


def test_entrypoint_migrates_runs_and_answers_its_healthcheck(
    empty_db_url: str, broker: Broker, tmp_path: Path
) -> None:
    sources = tmp_path / "sources.toml"
    local_sources(sources, broker)
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "LORAKOM_DB_URL": empty_db_url,
        "LORAKOM_API_HOST": "127.0.0.1",
        "LORAKOM_API_PORT": str(port),
        "LORAKOM_INGEST_INSTANCE": "entrypoint-test",
    }
    log = tmp_path / "lorakom.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["sh", str(ENTRYPOINT), "run", "--config", str(sources)], env=env, stdout=output, stderr=output
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"lorakom stopped:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no /healthz within 90 s:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)

        with psycopg.connect(libpq_url(empty_db_url)) as conn:
            assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
            assert conn.execute("SELECT slug FROM municipality").fetchall() == [("bad-driburg",)]
        check_env = {**env, "LORAKOM_API_PORT": str(port)}
        assert subprocess.run(healthcheck_command(), env=check_env, timeout=10).returncode == 0
        dead_env = {**env, "LORAKOM_API_PORT": str(free_port())}
        failed = subprocess.run(healthcheck_command(), env=dead_env, timeout=10, capture_output=True)
        assert failed.returncode != 0
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=30)  # compose's stop_grace_period
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail("lorakom did not stop within 30 s of SIGTERM")
    assert returncode == 0, log.read_text()[-3000:]
