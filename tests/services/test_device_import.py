"""The device CSV import without the API: rows named by the line they start on, upserts, dry runs."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from services.device_import import CSV_COLUMNS, device_csv_row, import_devices, parse_device_csv
from storage.device_import import ImportReport
from storage.devices import get_device
from tests.services.conftest import new_device, new_town


def test_rows_are_validated_as_the_api_validates_and_named_by_their_first_line() -> None:
    report = ImportReport(dry_run=True)
    lines = [
        "dev_eui,name,use_case,tags,bin_depth_mm\n",
        "70-B3-D5-7E-D0-00-00-01,Bin,waste,north; south,1200\n",
        "\n",
        'not-a-eui,"Two\n',
        'lines",other,,\n',
        "70b3d57ed0000003,   ,other,,\n",
        "70b3d57ed0000004,Extra,other,,,surplus\n",
    ]
    parsed = list(parse_device_csv(lines, report))
    assert [line for line, _ in parsed] == [2]
    spec = parsed[0][1]
    assert (spec.dev_eui, spec.tags, spec.metadata.bin_depth_mm) == (
        "70b3d57ed0000001",
        ["north", "south"],
        1200,
    )
    assert [(error.line, error.dev_eui) for error in report.errors] == [
        (4, "not-a-eui"),
        (6, "70b3d57ed0000003"),
        (7, None),
    ]
    assert report.errors[2].message == "more values than columns"
    assert report.rows == 4


def test_a_header_without_the_required_columns_is_an_error_on_line_1() -> None:
    report = ImportReport(dry_run=True)
    assert list(parse_device_csv(["name,colour\n", "Bin,red\n"], report)) == []
    (error,) = report.errors
    assert (error.line, error.message) == (1, "missing column(s) dev_eui; unknown column(s) colour")


def test_an_import_upserts_counts_and_leaves_other_towns_devices_alone(services_engine: Engine) -> None:
    town, other = new_town(services_engine), new_town(services_engine)
    _, taken = new_device(services_engine, other)
    lines = [
        "dev_eui,name,use_case\n",
        "70b3d57ed00000a1,First,waste\n",
        f"{taken},Someone else's,other\n",
        "70b3d57ed00000a1,Again,waste\n",
    ]
    with Session(services_engine) as session:
        dry = import_devices(session, municipality_id=town, lines=lines, dry_run=True)
        assert (dry.created, dry.updated, dry.unchanged) == (1, 0, 0)
        assert [(error.line, error.message) for error in dry.errors] == [
            (3, "DevEUI is registered in another municipality"),
            (4, "DevEUI repeats line 2"),
        ]
        done = import_devices(session, municipality_id=town, lines=lines)
        assert (done.created, done.updated, done.unchanged) == (1, 0, 0)
        again = import_devices(session, municipality_id=town, lines=lines[:2])
        assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
        device = get_device(session, municipality_id=town, dev_eui="70b3d57ed00000a1")
        row = dict(zip(CSV_COLUMNS, device_csv_row(device), strict=True))
        assert (row["name"], row["use_case"], row["tags"]) == ("First", "waste", "")
        session.rollback()
