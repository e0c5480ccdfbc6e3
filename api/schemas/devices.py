"""Device bodies. The fields and their validation come from `domain.device_fields.DeviceSpec`,
shared with the CSV import, so that JSON and CSV accept exactly the same devices."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator
from pydantic.json_schema import SkipJsonSchema

from domain.decoding import DecoderSourceName
from domain.device_fields import DeviceFields, DeviceMetadata, DeviceSpec
from domain.text import Label, Name, PrintableText
from domain.use_case import UseCase
from storage.device_import import RowError
from storage.devices import fields_of
from storage.models import Device, DeviceActivity

EXAMPLE: dict[str, JsonValue] = {
    "dev_eui": "70b3d57ed0001234",
    "name": "Bin Marktplatz 3",
    "codec_id": "milesight-iot/em310-udl",
    "decoder_source": "builtin",
    "use_case": "waste",
    "latitude": 48.6734,
    "longitude": 9.3762,
    "tags": ["altstadt", "glass"],
    "metadata": {"bin_depth_mm": 1200, "sensor_offset_mm": 50, "expected_interval_s": 1200},
}


BOTH_COORDINATES: dict[str, JsonValue] = {
    "required": ["latitude", "longitude"],
    "properties": {"latitude": {"type": "number"}, "longitude": {"type": "number"}},
}
LOCATION_IS_WHOLE: dict[str, JsonValue] = {
    "anyOf": [BOTH_COORDINATES, {"properties": {"latitude": {"type": "null"}, "longitude": {"type": "null"}}}]
}
"""`DeviceFields.location_is_whole` for the schema: a location is both coordinates or none
(each absent or null)."""
LOCATION_CHANGES_WHOLE: dict[str, JsonValue] = {
    "anyOf": [
        BOTH_COORDINATES,
        {
            "required": ["latitude", "longitude"],
            "properties": {"latitude": {"type": "null"}, "longitude": {"type": "null"}},
        },
        {"properties": {"latitude": False, "longitude": False}},
    ]
}
"""`DevicePatch.location_is_whole` for the schema: both coordinates, both null, or neither."""


class DeviceIn(DeviceSpec):
    """A device to register (or claim, when its DevEUI has been heard already)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE], **LOCATION_IS_WHOLE})


class DevicePatch(BaseModel):
    """Fields to change; absent fields stay as they are, `metadata` is replaced as a whole."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "Bin Marktplatz 3a", "tags": ["altstadt"]}],
            **LOCATION_CHANGES_WHOLE,
        },
    )

    # Null is no value for the name, use case, tags or metadata of a device: those four are
    # absent or given, and the schema does not offer null for them.
    name: Name | SkipJsonSchema[None] = None
    codec_id: Annotated[PrintableText, Field(max_length=200)] | None = None
    decoder_source: DecoderSourceName | None = None
    use_case: UseCase | SkipJsonSchema[None] = None
    latitude: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False, strict=True)
    longitude: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False, strict=True)
    tags: Annotated[list[Label], Field(max_length=50)] | SkipJsonSchema[None] = None
    metadata: DeviceMetadata | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def location_is_whole(self) -> DevicePatch:
        """A location changes as a whole: both coordinates, or neither. A patch of one alone
        would be valid or not by what the device holds now, which no schema can state."""
        given = {"latitude", "longitude"} & self.model_fields_set
        if given and (
            given != {"latitude", "longitude"} or (self.latitude is None) != (self.longitude is None)
        ):
            raise ValueError("latitude and longitude are given together or not at all")
        return self

    def applied_to(self, device: Device) -> DeviceFields:
        """The device's fields after this patch, validated as a whole (e.g. latitude with longitude)."""
        merged = fields_of(device).model_dump() | self.model_dump(exclude_unset=True)
        try:
            return DeviceFields.model_validate(merged)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from exc


class DeviceOut(DeviceSpec):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {**EXAMPLE, "created_at": "2026-11-26T09:00:00Z", "updated_at": "2026-11-26T09:05:00Z"}
            ]
        }
    )

    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, device: Device) -> DeviceOut:
        return cls(
            dev_eui=device.dev_eui,
            created_at=device.created_at,
            updated_at=device.updated_at,
            **fields_of(device).model_dump(),
        )


class RowErrorOut(BaseModel):
    line: int = Field(description="Line in the uploaded file; the header is line 1")
    dev_eui: str | None
    message: str

    @classmethod
    def of(cls, error: RowError) -> RowErrorOut:
        return cls(line=error.line, dev_eui=error.dev_eui, message=error.message)


class ImportReportOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dry_run": False,
                    "rows": 3,
                    "created": 1,
                    "updated": 0,
                    "unchanged": 1,
                    "errors": [
                        {"line": 3, "dev_eui": "70b3d57ed00012", "message": "dev_eui: Value error, …"}
                    ],
                }
            ]
        }
    )

    dry_run: bool
    rows: int = Field(description="Data rows read (the header not counted)")
    created: int
    updated: int
    unchanged: int
    errors: list[RowErrorOut]


class UnclaimedDeviceOut(BaseModel):
    """A DevEUI heard on this municipality's network sources that nobody has registered."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dev_eui": "a84041000181c2d5",
                    "first_seen_at": "2026-11-20T06:12:00Z",
                    "last_seen_at": "2026-11-26T08:57:00Z",
                    "uplink_count": 412,
                    "last_f_port": 2,
                    "sample_payload_hex": "0bb80d0001",
                    "last_gateway_id": "b827ebfffe6c1234",
                    "last_rssi_dbm": -97.0,
                    "last_snr_db": 6.5,
                }
            ]
        }
    )

    dev_eui: str
    first_seen_at: datetime
    last_seen_at: datetime
    uplink_count: int
    last_f_port: int | None
    sample_payload_hex: str | None = Field(description="The last payload heard, as hex")
    last_gateway_id: str | None
    last_rssi_dbm: float | None
    last_snr_db: float | None

    @classmethod
    def of(cls, activity: DeviceActivity) -> UnclaimedDeviceOut:
        payload = activity.last_payload
        return cls(
            dev_eui=activity.dev_eui,
            first_seen_at=activity.first_seen_at,
            last_seen_at=activity.last_seen_at,
            uplink_count=activity.uplink_count,
            last_f_port=activity.last_f_port,
            sample_payload_hex=payload.hex() if payload is not None else None,
            last_gateway_id=activity.last_gateway_id,
            last_rssi_dbm=activity.last_rssi_dbm,
            last_snr_db=activity.last_snr_db,
        )
