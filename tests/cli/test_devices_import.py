"""`lorakom devices import`: the API's import from the command line, with a progress bar."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cli.main import main
from storage.database import create_database_engine
from storage.models import Device
from storage.municipalities import create_municipality


def test_the_cli_imports_a_file_reports_refused_rows_and_dry_runs(
    migrated_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LORAKOM_DB_URL", migrated_db_url)
    slug = f"cli-{secrets.token_hex(4)}"
    engine = create_database_engine(migrated_db_url, pool_size=1)
    with Session(engine) as session:
        town = create_municipality(session, slug=slug, name="Kommandozeile", district=None)
        session.commit()
        town_id = town.id
    rows = [f"{secrets.token_hex(8)},Sensor {i},soil" for i in range(5000)]
    csv_path = tmp_path / "devices.csv"
    csv_path.write_text("dev_eui,name,use_case\n" + "\n".join(rows) + "\nnot-hex,Broken,soil\n")

    arguments = ["devices", "import", str(csv_path), "--municipality", slug, "--quiet"]
    assert main([*arguments, "--dry-run"]) == 1
    dry = capsys.readouterr()
    assert "5001 row(s): 5000 would be created, 0 would be updated, 0 unchanged, 1 refused" in dry.out
    assert "line 5002:" in dry.err

    assert main(arguments) == 1
    assert "5000 created" in capsys.readouterr().out
    with Session(engine) as session:
        stored = session.scalar(select(func.count()).where(Device.municipality_id == town_id))
    engine.dispose()
    assert stored == 5000

    csv_path.write_text("dev_eui,name\n" + "\n".join(row.rsplit(",", 1)[0] for row in rows[:10]) + "\n")
    assert main(arguments) == 0
    assert "10 row(s): 0 created, 10 updated" in capsys.readouterr().out  # use_case back to `other`


def test_an_unknown_municipality_or_file_is_a_clear_error(
    migrated_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LORAKOM_DB_URL", migrated_db_url)
    csv_path = tmp_path / "devices.csv"
    csv_path.write_text("dev_eui,name\n")
    assert main(["devices", "import", str(csv_path), "--municipality", "nowhere-at-all", "--quiet"]) == 1
    assert "nowhere-at-all" in capsys.readouterr().err
    assert main(["devices", "import", str(tmp_path / "missing.csv"), "--municipality", "x", "--quiet"]) == 2
    assert "cannot read" in capsys.readouterr().err
