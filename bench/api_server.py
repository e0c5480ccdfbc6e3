"""The API under test: uvicorn with one worker in a process of its own, and what is asked of its database."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # run as the server's own process
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import psycopg
from pydantic import SecretStr

from cli.backing_services import free_port
from storage.database import DatabaseSettings, create_database_engine


def serve(url: str, port: int) -> None:
    """The child process: the API as `lorakom run` serves it, one worker."""
    import uvicorn

    from api.app import create_app
    from api.settings import ApiSettings
    from cli.process import tune_garbage_collector

    settings = ApiSettings(database=DatabaseSettings(url=SecretStr(url)))
    app = create_app(settings)
    tune_garbage_collector()  # as `lorakom api` and `lorakom run` do before serving
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def memory_kib(pid: int) -> tuple[int, int]:
    """Resident set now and its peak (VmRSS, VmHWM) of a process, in KiB."""
    found = {"VmRSS": 0, "VmHWM": 0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in found:
            found[key] = int(rest.split()[0])
    return found["VmRSS"], found["VmHWM"]


def start_server(url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), url, str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"the API server did not become ready:\n{log.read_text()}")


def sessions_opened(url: str) -> int:
    """Connections ever opened to the benchmark's database (PostgreSQL 14+ counts them)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def create_key(url: str) -> str:
    from sqlalchemy.orm import Session

    from storage.api_keys import create_api_key

    engine = create_database_engine(url, pool_size=1)
    try:
        with Session(engine) as session:
            key, _ = create_api_key(session, municipality_slug=None, role="region-admin", name="bench-api")
            session.commit()
    finally:
        engine.dispose()
    return key


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
