"""Bodies of the health routes for field technicians: gateways and devices."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from domain.analytics.link_quality import SignalPercentiles
from services.health import DeviceHealth, GatewayDetail, GatewayHealth
from storage.health import GatewaySignal
from storage.series import from_epoch

GATEWAY_EXAMPLE: dict[str, JsonValue] = {
    "gateway_id": "b827ebfffe6c1234",
    "name": "Rathaus Dach",
    "owner": "wendlingen",
    "online": True,
    "status_since": "2026-11-20T04:15:00Z",
    "offline_after_s": 900.0,
    "network_server_online": True,
    "last_heard_at": "2026-11-26T08:59:00Z",
    "uplinks_per_hour": 412.5,
    "devices_heard": 118,
}


class PercentilesOut(BaseModel):
    p5: float
    p50: float
    p95: float

    @classmethod
    def of(cls, found: SignalPercentiles | None) -> PercentilesOut | None:
        return (
            None
            if found is None
            else cls(p5=round(found.p5, 2), p50=round(found.p50, 2), p95=round(found.p95, 2))
        )


class GatewayHealthOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [GATEWAY_EXAMPLE]})

    gateway_id: str
    name: str | None
    owner: str | None
    online: bool = Field(
        description="With hysteresis: offline after several missed expected intervals, "
        "online again after two reports in a row"
    )
    status_since: datetime | None
    offline_after_s: float = Field(description="Silence after which this gateway counts as offline")
    network_server_online: bool | None = Field(description="What the network server last said, if anything")
    last_heard_at: datetime | None
    uplinks_per_hour: float = Field(description="Mean over the last 24 hours")
    devices_heard: int = Field(description="This municipality's devices heard in the last 24 hours")

    @staticmethod
    def body(health: GatewayHealth) -> dict[str, object]:
        """The JSON object of one gateway, built without model validation (see `api.responses`)."""
        gateway = health.gateway
        return {
            "gateway_id": gateway.gateway_id,
            "name": gateway.name,
            "owner": gateway.owner_slug,
            "online": health.status.online,
            "status_since": from_epoch(health.status.since_s) if health.status.since_s is not None else None,
            "offline_after_s": float(health.status.offline_after_s),
            "network_server_online": gateway.online,
            "last_heard_at": health.last_heard_at,
            "uplinks_per_hour": round(float(health.uplinks_per_hour), 2),
            "devices_heard": health.devices_heard,
        }

    @classmethod
    def of(cls, health: GatewayHealth) -> GatewayHealthOut:
        return cls.model_validate(cls.body(health))


class GatewayDetailOut(GatewayHealthOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **GATEWAY_EXAMPLE,
                    "rssi_dbm": {"p5": -118.0, "p50": -97.0, "p95": -71.0},
                    "snr_db": {"p5": -11.5, "p50": 3.2, "p95": 9.8},
                    "devices_heard_7d": ["70b3d57ed0001234", "70b3d57ed0004a01"],
                    "heard_only_by_this": ["70b3d57ed0004a01"],
                    "uptime_7d_percent": 99.6,
                    "uptime_30d_percent": 98.1,
                }
            ]
        }
    )

    rssi_dbm: PercentilesOut | None = Field(description="Over the last 7 days, all devices")
    snr_db: PercentilesOut | None
    devices_heard_7d: list[str] = Field(description="This municipality's devices heard in the last 7 days")
    heard_only_by_this: list[str] = Field(
        description="Of those, the ones no other gateway heard: lost if it fails"
    )
    uptime_7d_percent: float | None
    uptime_30d_percent: float | None

    @classmethod
    def of_detail(cls, detail: GatewayDetail) -> GatewayDetailOut:
        return cls(
            **GatewayHealthOut.of(detail.health).model_dump(),
            rssi_dbm=PercentilesOut.of(detail.rssi_dbm),
            snr_db=PercentilesOut.of(detail.snr_db),
            devices_heard_7d=detail.devices_heard_7d,
            heard_only_by_this=detail.heard_only_by_this,
            uptime_7d_percent=detail.uptime_percent.get(7),
            uptime_30d_percent=detail.uptime_percent.get(30),
        )


DEVICE_EXAMPLE: dict[str, JsonValue] = {
    "dev_eui": "70b3d57ed0001234",
    "name": "Bin Marktplatz 3",
    "last_seen_at": "2026-11-26T08:40:00Z",
    "expected_interval_s": 900.0,
    "interval_registered": True,
    "silent": False,
    "battery_percent": 81.0,
    "battery_percent_per_week": -0.4,
    "battery_weeks_left": 190.0,
    "frame_loss_percent": 1.2,
    "frame_counter_resets": 0,
    "best_gateway_id": "b827ebfffe6c1234",
    "rssi_dbm": -97.0,
    "snr_db": 4.5,
    "spreading_factor": 9,
}


class DeviceHealthOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [DEVICE_EXAMPLE]})

    dev_eui: str
    name: str
    last_seen_at: datetime | None
    expected_interval_s: float
    interval_registered: bool = Field(description="False when estimated from the uplinks seen")
    silent: bool = Field(description="Quiet for more than 2.5 expected intervals")
    battery_percent: float | None
    battery_percent_per_week: float | None
    battery_weeks_left: float | None
    frame_loss_percent: float | None = Field(description="From gaps in the frame counter, resets excluded")
    frame_counter_resets: int
    best_gateway_id: str | None = Field(description="The gateway that heard the last uplink best")
    rssi_dbm: float | None
    snr_db: float | None
    spreading_factor: int | None

    @classmethod
    def of(cls, health: DeviceHealth) -> DeviceHealthOut:
        activity = health.activity
        battery = health.battery
        loss = health.frame_loss.percent
        return cls(
            dev_eui=health.device.dev_eui,
            name=health.device.name,
            last_seen_at=activity.last_seen_at if activity else None,
            expected_interval_s=round(health.expected_interval_s, 1),
            interval_registered=health.interval_from_metadata,
            silent=health.silent,
            battery_percent=battery.battery_percent if battery else None,
            battery_percent_per_week=round(battery.percent_per_week, 3)
            if battery and battery.percent_per_week is not None
            else None,
            battery_weeks_left=round(battery.weeks_left, 1)
            if battery and battery.weeks_left is not None
            else None,
            frame_loss_percent=None if loss is None else round(loss, 2),
            frame_counter_resets=health.frame_loss.resets,
            best_gateway_id=activity.last_gateway_id if activity else None,
            rssi_dbm=activity.last_rssi_dbm if activity else None,
            snr_db=activity.last_snr_db if activity else None,
            spreading_factor=activity.last_spreading_factor if activity else None,
        )


class GatewaySignalOut(BaseModel):
    gateway_id: str
    receptions: int
    rssi_dbm_median: float | None
    snr_db_median: float | None
    last_heard_at: datetime

    @classmethod
    def of(cls, signal: GatewaySignal) -> GatewaySignalOut:
        return cls(
            gateway_id=signal.gateway_id,
            receptions=signal.receptions,
            rssi_dbm_median=signal.rssi_dbm_median,
            snr_db_median=signal.snr_db_median,
            last_heard_at=signal.last_heard_at,
        )


class DeviceDetailOut(DeviceHealthOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **DEVICE_EXAMPLE,
                    "gateways": [
                        {
                            "gateway_id": "b827ebfffe6c1234",
                            "receptions": 640,
                            "rssi_dbm_median": -97.0,
                            "snr_db_median": 4.5,
                            "last_heard_at": "2026-11-26T08:40:00Z",
                        }
                    ],
                }
            ]
        }
    )

    gateways: list[GatewaySignalOut] = Field(
        description="Gateways that heard it in the last 7 days, best first"
    )
