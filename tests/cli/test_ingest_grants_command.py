"""`lorakom ingest-grants`: an operator grants, lists and revokes ingest from the command line."""

from __future__ import annotations

import psycopg
import pytest

from cli.main import main
from storage.device_registry import ensure_municipality


def test_grant_list_and_revoke(
    fresh_db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LORAKOM_DB_URL", fresh_db_url)
    with psycopg.connect(fresh_db_url) as conn:
        ensure_municipality(conn, "owner-town")
        ensure_municipality(conn, "source-town")
    assert main(["ingest-grants", "grant", "--owner", "owner-town", "--source", "source-town"]) == 0
    grant_id = int(capsys.readouterr().out.split(":")[0])
    assert main(["ingest-grants", "list", "--owner", "source-town"]) == 0
    assert capsys.readouterr().out == f"{grant_id}: sources of source-town deliver for owner-town\n"
    # Only the owner revokes; the source town is told there is no such grant of its own.
    assert main(["ingest-grants", "revoke", "--owner", "source-town", "--id", str(grant_id)]) == 1
    assert main(["ingest-grants", "revoke", "--owner", "owner-town", "--id", str(grant_id)]) == 0
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM ingest_grant").fetchone() == (0,)
