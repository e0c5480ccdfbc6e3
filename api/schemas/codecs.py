"""Codec script bodies, and the answer of trying a script on one payload.

A script is checked here for what the database and the wire need (size in bytes, no
NUL, which PostgreSQL refuses in text); whether it is JavaScript at all is the
sandbox's call, made by the router before anything is stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from api.schemas.numbers import BodyInt
from domain.decoding import ScriptStyleName
from domain.quantity import find_quantity
from domain.reading import Reading
from domain.text import Label, PrintableText
from domain.use_case import CodecUseCase
from storage.codec_scripts import (
    CODEC_ID_PATTERN,
    MAX_SCRIPT_BYTES,
    ScriptFields,
    ScriptInfo,
)

CodecIdText = Annotated[str, StringConstraints(pattern=CODEC_ID_PATTERN, max_length=200)]

EXAMPLE_SCRIPT = """function decodeUplink(input) {
  var b = input.bytes;
  return { data: { temperature: ((b[0] << 8 | b[1]) << 16 >> 16) / 10 }, warnings: [], errors: [] };
}"""
EXAMPLE_FIELDS: dict[str, JsonValue] = {
    "style": "decodeUplink",
    "script": EXAMPLE_SCRIPT,
    "description": "Temperature probe, firmware 2.x",
    "devices": ["TP-200"],
    "use_case": "environment",
}


def _storable_script(script: str) -> str:
    if "\x00" in script:
        raise ValueError("a script may not contain NUL characters")
    if len(script.encode()) > MAX_SCRIPT_BYTES:
        raise ValueError(f"a script may have at most {MAX_SCRIPT_BYTES} bytes (UTF-8)")
    return script


ScriptText = Annotated[str, Field(min_length=1), AfterValidator(_storable_script)]


class CodecScriptFields(BaseModel):
    """A script's text and what it is for: the body of PUT, and of POST with `codec_id`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [EXAMPLE_FIELDS]},
    )

    style: ScriptStyleName = Field(
        default="decodeUplink",
        description="`decodeUplink` (Device Repository, ChirpStack v4: `decodeUplink(input) -> "
        "{data, warnings, errors}`), `Decode` (ChirpStack v3: `Decode(fPort, bytes, variables)`) or "
        "`Decoder` (The Things Network / TTS v2: `Decoder(bytes, port)`, its return is the decoded "
        "object). A legacy `Decoder` script registered as `decodeUplink` runs as `Decoder`; a "
        "script without the function its style calls is refused.",
    )
    script: ScriptText = Field(description=f"ES2020 source, at most {MAX_SCRIPT_BYTES // 2**20} MiB")
    description: Annotated[PrintableText, Field(max_length=2000)] | None = None
    devices: list[Label] = Field(default_factory=list, max_length=100, description="Device models")
    use_case: CodecUseCase = CodecUseCase.GENERIC

    def script_fields(self) -> ScriptFields:
        return ScriptFields(
            style=self.style,
            script=self.script,
            description=self.description,
            devices=tuple(self.devices),
            use_case=self.use_case.value,
        )


class CodecScriptIn(CodecScriptFields):
    """A script to register under a new codec id."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"codec_id": "stadtwerke-example/tp200-codec", **EXAMPLE_FIELDS}]},
    )

    codec_id: CodecIdText = Field(description="`vendor/codec`, lower case; not a built-in codec's id")


class CodecScriptOut(BaseModel):
    """A registered script without its text."""

    codec_id: str
    style: str
    description: str | None
    devices: list[str]
    use_case: str
    owner_municipality: str | None = Field(
        description="Slug of the municipality that registered it, shown to that municipality's keys "
        "and to region admins; null otherwise and for scripts of the region"
    )
    may_change: bool = Field(description="Whether the calling key may replace or delete it")
    script_bytes: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, info: ScriptInfo, *, owner_municipality: str | None, may_change: bool) -> CodecScriptOut:
        return cls(
            codec_id=info.codec_id,
            style=info.style,
            description=info.description,
            devices=list(info.devices),
            use_case=info.use_case,
            owner_municipality=owner_municipality,
            may_change=may_change,
            script_bytes=info.script_bytes,
            created_at=info.created_at,
            updated_at=info.updated_at,
        )


class CodecScriptDetail(CodecScriptOut):
    """A registered script with its text."""

    script: str


class TryPayloadIn(BaseModel):
    """One uplink to try a script on, as a technician copies it from the network server."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"f_port": 2, "payload_hex": "00eb"}]}
    )

    f_port: BodyInt = Field(ge=0, le=255)
    payload_hex: Annotated[str, StringConstraints(pattern=r"^(?:[0-9a-fA-F]{2}\s?)*$", max_length=1024)]
    metadata: dict[str, JsonValue] | None = Field(
        default=None, description="Device metadata the readings need (e.g. `bin_depth_mm`)"
    )

    def payload(self) -> bytes:
        return bytes.fromhex(self.payload_hex)


class ReadingOut(BaseModel):
    quantity: str
    value: float
    unit: str | None
    quality: str

    @classmethod
    def of(cls, reading: Reading) -> ReadingOut:
        found = find_quantity(reading.quantity)
        return cls(
            quantity=reading.quantity,
            value=reading.value,
            unit=found.unit if found else None,
            quality=reading.quality.name.lower(),
        )


class TryPayloadOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "decoded": {"temperature": 23.5},
                    "readings": [
                        {"quantity": "temperature", "value": 23.5, "unit": "Cel", "quality": "good"}
                    ],
                    "warnings": [],
                }
            ]
        }
    )

    decoded: dict[str, JsonValue]
    readings: list[ReadingOut]
    warnings: list[str]
