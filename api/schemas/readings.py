"""Reading bodies: latest values per device, and history points."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from domain.history import HistoryPoint
from domain.latest import LatestDevice


class LatestValue(BaseModel):
    value: float
    time: datetime
    quality: int = Field(description="0 good, 1 implausible, 2 clamped, 3 flagged by the device")


class LatestDeviceOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dev_eui": "70b3d57ed0001234",
                    "name": "Bin Marktplatz 3",
                    "use_case": "waste",
                    "latitude": 48.6734,
                    "longitude": 9.3762,
                    "tags": ["altstadt"],
                    "values": {
                        "fill_percent": {"value": 72.5, "time": "2026-11-26T08:40:00Z", "quality": 0},
                        "battery": {"value": 91.0, "time": "2026-11-26T08:40:00Z", "quality": 0},
                    },
                }
            ]
        }
    )

    dev_eui: str
    name: str
    use_case: str | None
    latitude: float | None
    longitude: float | None
    tags: list[str]
    values: dict[str, LatestValue] = Field(description="Latest value per quantity")

    @staticmethod
    def body(latest: LatestDevice) -> dict[str, object]:
        """The JSON object of one device, built without model validation (see `api.responses`)."""
        device = latest.device
        return {
            "dev_eui": device.dev_eui,
            "name": device.name,
            "use_case": device.use_case,
            "latitude": device.latitude,
            "longitude": device.longitude,
            "tags": device.tags,
            "values": {
                state.quantity: {"value": state.value, "time": state.time, "quality": state.quality}
                for state in latest.states
            },
        }


class HistoryPointOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "time": "2026-11-26T08:00:00Z",
                    "dev_eui": "70b3d57ed0001234",
                    "quantity": "fill_percent",
                    "value": 71.8,
                    "samples": 4,
                    "gap": False,
                }
            ]
        }
    )

    time: datetime = Field(description="The reading's time, or the start of its bucket")
    dev_eui: str
    quantity: str
    value: float | None = Field(description="Null in a gap")
    samples: int = Field(description="Readings in the bucket (1 for a raw reading)")
    gap: bool = Field(description="True for a bucket without any reading")

    @classmethod
    def of(cls, point: HistoryPoint, dev_eui: str) -> HistoryPointOut:
        return cls(
            time=point.time,
            dev_eui=dev_eui,
            quantity=point.quantity,
            value=point.value,
            samples=point.samples,
            gap=point.gap,
        )

    @staticmethod
    def body(point: HistoryPoint, dev_eui: str) -> dict[str, object]:
        """The JSON object of one point, built without model validation (see `api.responses`)."""
        return {
            "time": point.time,
            "dev_eui": dev_eui,
            "quantity": point.quantity,
            "value": point.value,
            "samples": point.samples,
            "gap": point.gap,
        }
