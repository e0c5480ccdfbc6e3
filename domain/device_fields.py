"""A device as a person describes it: the fields that every way of registering one validates.

`DeviceSpec` is the one description of a device that the API's JSON, the CSV import
and the CLI all validate against, so that a device accepted by one path is accepted
by every other.
"""

from __future__ import annotations

import json
import math
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from domain.decoding import DecoderSourceName
from domain.ids import parse_dev_eui
from domain.text import Label, Name, PrintableText
from domain.use_case import UseCase

DEV_EUI_PATTERN = r"^[\s:\-_.]*(?:0[\s:\-_.]*[xX][\s:\-_.]*)?(?:[0-9A-Fa-f][\s:\-_.]*){16}$"
"""The spellings `parse_dev_eui` takes (separators anywhere, an optional `0x`), for the schema."""

DevEuiText = Annotated[
    str,
    AfterValidator(parse_dev_eui),
    WithJsonSchema({"type": "string", "pattern": DEV_EUI_PATTERN, "examples": ["70b3d57ed0001234"]}),
]


class DeviceMetadata(BaseModel):
    """What the use cases need to know about where and how a device is mounted.

    The named fields are validated because use cases compute with them; other keys
    (a planting year, an asset number, a maintenance contract) are kept as given,
    since every town records its own extras and none should need a release for it.
    """

    model_config = ConfigDict(extra="allow")

    bin_depth_mm: float | None = Field(default=None, gt=0, le=20_000, allow_inf_nan=False)
    sensor_offset_mm: float | None = Field(default=None, ge=0, le=20_000, allow_inf_nan=False)
    parking_zone: Label | None = None
    parking_spot: Label | None = None
    tree_id: Label | None = None
    species: Label | None = None
    soil_type: Label | None = None
    expected_interval_s: int | None = Field(default=None, gt=0, le=7 * 86_400)
    sensor_height_mm: float | None = Field(default=None, gt=0, le=100_000, allow_inf_nan=False)

    @model_validator(mode="after")
    def storable(self) -> DeviceMetadata:
        """The free-form keys are bounded, and hold only what a JSONB column stores as given.

        Without bounds one editor could park megabytes in every device row that each list
        and export reads back; and a NUL character, an integer beyond 64 bits or an
        unpaired surrogate is refused by PostgreSQL or the JSON writer, which made a 500.
        """
        document = self.model_dump(exclude_none=True)
        keys = _check_metadata_value(document, depth=0)
        if keys > MAX_METADATA_KEYS:
            raise ValueError(f"metadata may have at most {MAX_METADATA_KEYS} keys (nested ones included)")
        size = len(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode())
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata may take at most {MAX_METADATA_BYTES} bytes as JSON, not {size}")
        return self


MAX_METADATA_BYTES = 8 * 1024
MAX_METADATA_DEPTH = 4
"""Objects and lists nested in metadata, counting its own top level as 1."""
MAX_METADATA_KEYS = 100
JSON_INTEGER_RANGE = range(-(2**63), 2**63)
"""What every JSON consumer of the API (JavaScript aside) reads back as the same integer."""


def _check_metadata_value(value: object, *, depth: int) -> int:
    """Refuse what JSONB cannot store as given; the number of object keys in `value`."""
    if isinstance(value, str):
        _check_metadata_text(value)
        return 0
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        if value not in JSON_INTEGER_RANGE:
            raise ValueError("metadata integers lie between -2**63 and 2**63 - 1")
        return 0
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("metadata numbers are finite")
        return 0
    if isinstance(value, dict | list):
        if depth >= MAX_METADATA_DEPTH:
            raise ValueError(f"metadata nests at most {MAX_METADATA_DEPTH} levels deep")
        if isinstance(value, list):
            return sum(_check_metadata_value(item, depth=depth + 1) for item in value)
        for key in value:
            _check_metadata_text(str(key))
        return len(value) + sum(_check_metadata_value(item, depth=depth + 1) for item in value.values())
    raise ValueError(f"metadata holds JSON values only, not {type(value).__name__}")


def _check_metadata_text(text: str) -> None:
    if "\x00" in text:
        raise ValueError("metadata text may not contain NUL characters")
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise ValueError("metadata text must be valid Unicode (no unpaired surrogates)") from exc


class DeviceFields(BaseModel):
    """Everything about a device that a person may change; the DevEUI is not among them."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    codec_id: Annotated[PrintableText, StringConstraints(max_length=200)] | None = None
    decoder_source: DecoderSourceName | None = None
    use_case: UseCase = UseCase.OTHER
    latitude: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    longitude: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    tags: list[Label] = Field(default_factory=list, max_length=50)
    metadata: DeviceMetadata = Field(default_factory=DeviceMetadata)

    @model_validator(mode="after")
    def location_is_whole(self) -> DeviceFields:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude are given together or not at all")
        return self


class DeviceSpec(DeviceFields):
    """A device to register: its fields and its DevEUI, normalised to 16 lower-case hex digits."""

    dev_eui: DevEuiText
