"""Devices of a municipality: CRUD, CSV import and export, and the unclaimed ones.

Registering a DevEUI that was heard before (an unclaimed device) is claiming it:
the configured `on_device_registered` hook then decodes its stored history in a
background task, after the response has gone out.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.app_services import AppServices
from api.deps import (
    DeviceEditorDep,
    EngineDep,
    MunicipalityDep,
    RedecodeAdminDep,
    ServicesDep,
    SessionDep,
    SettingsDep,
)
from api.exports import csv_response, paged
from api.pagination import CursorQuery, LimitQuery, Page, int_cursor, page_of, text_cursor
from api.problems import problem_responses
from api.schemas.devices import (
    DeviceIn,
    DeviceOut,
    DevicePatch,
    ImportReportOut,
    RowErrorOut,
    UnclaimedDeviceOut,
)
from api.schemas.moments import Moment
from api.uploads import read_upload, upload_request_body
from domain.errors import StorageUnavailable
from domain.ids import parse_dev_eui
from domain.municipality import Municipality
from domain.text import Label
from domain.use_case import UseCase
from services.device_import import CSV_COLUMNS, device_csv_row, import_devices
from storage.devices import (
    count_stored_frames,
    create_device,
    delete_device,
    get_device,
    list_devices,
    list_unclaimed,
    update_device,
    was_heard,
)
from storage.models import Device
from storage.tenancy import tenant_of


class RedecodeAccepted(BaseModel):
    """A redecode was queued; it replaces the device's readings in the range when it ran."""

    dev_eui: str
    since: datetime | None
    frames: int = Field(description="Stored frames in the range, as counted when the job was queued")


router = APIRouter(prefix="/municipalities/{slug}", tags=["devices"])

DevEuiPath = Annotated[
    str,
    Path(
        max_length=64,
        description="Any usual spelling; answered as 16 lower-case hex digits",
        examples=["70B3D57ED0001234"],
    ),
]


def schedule_registered(
    services: AppServices, tasks: BackgroundTasks, engine: Engine, device_ids: list[int]
) -> None:
    hook = services.on_device_registered
    if hook is None:
        return
    for device_id in device_ids:
        tasks.add_task(hook, engine, device_id)


@router.get(
    "/devices",
    summary="The municipality's devices",
    response_model=Page[DeviceOut],
    responses=problem_responses(403, 404),
)
def list_all(
    municipality: MunicipalityDep,
    session: SessionDep,
    use_case: UseCase | None = None,
    tag: Annotated[Label | None, Query()] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[DeviceOut]:
    rows = list_devices(
        session,
        municipality_id=municipality.id,
        after_id=int_cursor(cursor),
        limit=limit,
        use_case=use_case,
        tag=tag,
    )
    return page_of(rows, limit, item=DeviceOut.of, position=lambda device: device.id)


@router.post(
    "/devices",
    summary="Register a device, or claim an unclaimed one (editor)",
    status_code=status.HTTP_201_CREATED,
    response_model=DeviceOut,
    responses=problem_responses(403, 404, 409),
)
def create(
    body: DeviceIn,
    municipality: DeviceEditorDep,
    session: SessionDep,
    engine: EngineDep,
    services: ServicesDep,
    tasks: BackgroundTasks,
) -> DeviceOut:
    device = create_device(session, municipality_id=municipality.id, spec=body)
    heard = was_heard(session, municipality_id=municipality.id, dev_eui=device.dev_eui)
    session.commit()
    if heard:
        schedule_registered(services, tasks, engine, [device.id])
    return DeviceOut.of(device)


@router.get(
    "/devices/export",
    summary="All devices as CSV, in the import's format",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV, header first"},
        **problem_responses(403, 404),
    },
)
def export(
    municipality: MunicipalityDep, request_session: SessionDep, engine: EngineDep, settings: SettingsDep
) -> StreamingResponse:
    page_rows = settings.export_page_rows

    def read_page(session: Session, after: int | None) -> tuple[list[list[str]], int | None]:
        found = list_devices(session, municipality_id=municipality.id, after_id=after, limit=page_rows)
        shown = found[:page_rows]
        return [device_csv_row(device) for device in shown], shown[-1].id if len(found) > page_rows else None

    return csv_response(
        CSV_COLUMNS, paged(engine, read_page, tenant_of(request_session)), f"{municipality.slug}-devices"
    )


async def import_file(request: Request, settings: SettingsDep) -> bytes:
    """The uploaded CSV, read after the key's right to import is checked (the parameter order
    of `import_csv`); in memory, since it is parsed as one text (`api.uploads`)."""
    return await read_upload(request, "file", settings.max_import_bytes)


ImportFileDep = Annotated[bytes, Depends(import_file)]


@router.post(
    "/devices/import",
    summary="Register or update devices from CSV (editor)",
    description=(
        "Columns as in the export: `dev_eui` and `name` required, `tags` separated by `;`. "
        "Good rows go in, bad rows are reported by line number. Re-uploading the same file changes "
        "nothing. `dry_run=true` reports what would happen without writing. A DevEUI registered in "
        "another municipality is a row error. A file that stops being CSV (a quote never closed, a "
        "field over 131,072 characters) is reported on the line where that row begins, and is not "
        "read further."
    ),
    response_model=ImportReportOut,
    responses=problem_responses(403, 404, 413, 422),
    openapi_extra={"requestBody": upload_request_body("file")},
)
def import_csv(
    municipality: DeviceEditorDep,
    raw: ImportFileDep,
    session: SessionDep,
    engine: EngineDep,
    services: ServicesDep,
    tasks: BackgroundTasks,
    dry_run: bool = False,
) -> ImportReportOut:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the file is not UTF-8 text") from exc
    if "\x00" in text:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the file is not CSV text")
    report = import_devices(
        session, municipality_id=municipality.id, lines=io.StringIO(text, newline=""), dry_run=dry_run
    )
    session.commit()
    schedule_registered(services, tasks, engine, report.heard_device_ids)
    return ImportReportOut(
        dry_run=report.dry_run,
        rows=report.rows,
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        errors=[RowErrorOut.of(error) for error in report.errors],
    )


@router.get(
    "/devices/{dev_eui}",
    summary="One device",
    response_model=DeviceOut,
    responses=problem_responses(403, 404),
)
def get_one(dev_eui: DevEuiPath, municipality: MunicipalityDep, session: SessionDep) -> DeviceOut:
    return DeviceOut.of(_device(session, municipality, dev_eui))


@router.patch(
    "/devices/{dev_eui}",
    summary="Change a device (editor)",
    response_model=DeviceOut,
    responses=problem_responses(403, 404),
)
def edit(
    body: DevicePatch, dev_eui: DevEuiPath, municipality: DeviceEditorDep, session: SessionDep
) -> DeviceOut:
    device = _device(session, municipality, dev_eui)
    updated = update_device(session, device, body.applied_to(device))
    session.commit()
    return DeviceOut.of(updated)


@router.delete(
    "/devices/{dev_eui}",
    summary="Unregister a device (editor); its stored history stays, unreachable through the API",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(403, 404),
)
def delete(dev_eui: DevEuiPath, municipality: DeviceEditorDep, session: SessionDep) -> None:
    delete_device(session, _device(session, municipality, dev_eui))
    session.commit()


@router.post(
    "/devices/{dev_eui}/redecode",
    summary="Decode the device's stored raw frames again (admin)",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RedecodeAccepted,
    responses=problem_responses(403, 404, 503),
)
def redecode(
    dev_eui: DevEuiPath,
    municipality: RedecodeAdminDep,
    session: SessionDep,
    engine: EngineDep,
    services: ServicesDep,
    tasks: BackgroundTasks,
    since: Annotated[Moment | None, Query(description="Only frames received at or after this time")] = None,
) -> RedecodeAccepted:
    """After a codec change or a fixed decoder: the job runs in the background, idempotently."""
    device = _device(session, municipality, dev_eui)
    hook = services.redecode
    if hook is None:
        raise StorageUnavailable("redecoding is not configured in this deployment")
    frames = count_stored_frames(session, device, since)
    tasks.add_task(hook, engine, device.id, since)
    return RedecodeAccepted(dev_eui=device.dev_eui, since=since, frames=frames)


@router.get(
    "/unclaimed-devices",
    summary="DevEUIs heard on the municipality's own sources that none of its devices claims",
    response_model=Page[UnclaimedDeviceOut],
    responses=problem_responses(403, 404),
)
def unclaimed(
    municipality: MunicipalityDep, session: SessionDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[UnclaimedDeviceOut]:
    rows = list_unclaimed(
        session, municipality_id=municipality.id, after_dev_eui=text_cursor(cursor), limit=limit
    )
    return page_of(rows, limit, item=UnclaimedDeviceOut.of, position=lambda activity: activity.dev_eui)


def _device(session: Session, municipality: Municipality, dev_eui: str) -> Device:
    return get_device(session, municipality_id=municipality.id, dev_eui=parse_dev_eui(dev_eui))
