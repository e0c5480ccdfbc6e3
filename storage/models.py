"""Tables of DESIGN §4 as SQLAlchemy 2 models.

The models document the schema and serve the API's ORM queries; the hot ingest
path writes with COPY through `storage.uplinks` and never instantiates them.
Time-series tables (`uplink`, `reception`, `reading`, `gateway_heartbeat`)
carry their time column in every unique key so that they can become
TimescaleDB hypertables unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Timestamp = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: Timestamp, dict[str, Any]: JSONB}


class Municipality(Base):
    __tablename__ = "municipality"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    district: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Device(Base):
    """A registered device; `dev_eui` is globally unique as LoRaWAN intends."""

    __tablename__ = "device"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(
        ForeignKey("municipality.id", ondelete="CASCADE"), index=True
    )
    dev_eui: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    codec_id: Mapped[str | None] = mapped_column(String(200))
    decoder_source: Mapped[str | None] = mapped_column(String(20))
    use_case: Mapped[str | None] = mapped_column(String(40), index=True)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    tags: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)


class Gateway(Base):
    """A gateway, registered by a person or discovered on an uplink's metadata."""

    __tablename__ = "gateway"

    gateway_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    municipality_id: Mapped[int | None] = mapped_column(
        ForeignKey("municipality.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str | None] = mapped_column(String(200))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    altitude_m: Mapped[float | None] = mapped_column(Float)
    first_seen_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    last_uplink_at: Mapped[datetime | None]
    last_status_at: Mapped[datetime | None]
    online: Mapped[bool | None] = mapped_column(Boolean)
    status_changed_at: Mapped[datetime | None]


class Uplink(Base):
    """One raw frame as the network server delivered it, with how it was decoded.

    Few indexes on purpose: every index costs each of the thousands of inserts per
    second. Raw frames are read by DevEUI (a device's history, redecoding) and by
    time; a device's registered id is reached through its DevEUI.
    """

    __tablename__ = "uplink"

    received_at: Mapped[datetime] = mapped_column(primary_key=True)
    uplink_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    municipality_id: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(100))
    network_server: Mapped[str] = mapped_column(String(20))
    dev_eui: Mapped[str | None] = mapped_column(String(16))
    device_id: Mapped[int | None] = mapped_column(Integer)
    network_device_id: Mapped[str | None] = mapped_column(String(200))
    application_id: Mapped[str | None] = mapped_column(String(200))
    f_cnt: Mapped[int | None] = mapped_column(BigInteger)
    f_port: Mapped[int | None] = mapped_column(SmallInteger)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    network_decoded: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    decoded: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    decode_status: Mapped[str] = mapped_column(String(20))
    decoder_source: Mapped[str | None] = mapped_column(String(20))
    codec_id: Mapped[str | None] = mapped_column(String(200))
    decode_error: Mapped[str | None] = mapped_column(Text)
    confirmed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    simulated: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    spreading_factor: Mapped[int | None] = mapped_column(SmallInteger)
    bandwidth_hz: Mapped[int | None] = mapped_column(Integer)
    frequency_hz: Mapped[int | None] = mapped_column(BigInteger)
    data_rate: Mapped[int | None] = mapped_column(SmallInteger)
    airtime_s: Mapped[float | None] = mapped_column(Float)
    gateway_count: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    best_gateway_id: Mapped[str | None] = mapped_column(String(128))
    best_rssi_dbm: Mapped[float | None] = mapped_column(Float)
    best_snr_db: Mapped[float | None] = mapped_column(Float)
    # Set when the network server's time lay too far in the future: the frame is then
    # stored under the bridge's receive time, and this keeps what was claimed.
    claimed_received_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_uplink_dev_eui_received_at", "dev_eui", text("received_at DESC")),
        Index(
            "ix_uplink_unclaimed",
            "dev_eui",
            "received_at",
            postgresql_where=text("decode_status = 'unclaimed'"),
        ),
        Index(
            "ix_uplink_time_refused", "uplink_key", postgresql_where=text("claimed_received_at IS NOT NULL")
        ),
    )


class Reception(Base):
    """One gateway antenna that heard one uplink."""

    __tablename__ = "reception"

    received_at: Mapped[datetime] = mapped_column(primary_key=True)
    uplink_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    antenna: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    dev_eui: Mapped[str | None] = mapped_column(String(16))
    municipality_id: Mapped[int] = mapped_column(Integer)
    rssi_dbm: Mapped[float | None] = mapped_column(Float)
    snr_db: Mapped[float | None] = mapped_column(Float)
    channel: Mapped[int | None] = mapped_column(Integer)  # ChirpStack sends a uint32
    spreading_factor: Mapped[int | None] = mapped_column(SmallInteger)

    __table_args__ = (Index("ix_reception_gateway_id_received_at", "gateway_id", text("received_at DESC")),)


class Reading(Base):
    """The narrow time series: one value of one quantity of one device at one time.

    The primary key is ordered (device, quantity, time) because every query asks for
    one device's quantity over a time range; so one index serves both uniqueness and
    reads (TimescaleDB only needs the time column somewhere in the key).
    """

    __tablename__ = "reading"

    device_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    quantity: Mapped[str] = mapped_column(String(40), primary_key=True)
    time: Mapped[datetime] = mapped_column(primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    quality: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))


class DeviceState(Base):
    """Latest value per device and quantity, upserted on ingest so "now" never scans history."""

    __tablename__ = "device_state"

    device_id: Mapped[int] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"), primary_key=True)
    quantity: Mapped[str] = mapped_column(String(40), primary_key=True)
    time: Mapped[datetime]
    value: Mapped[float] = mapped_column(Float)
    quality: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))


class DeviceActivity(Base):
    """Link health per DevEUI, registered or not: what a field technician checks first.

    Keyed by DevEUI rather than device id so that unclaimed devices (heard, not yet
    registered) have a first/last seen and a sample payload too; and by the
    municipality whose sources heard it (or that owns the device), so that another
    town's source hearing the same DevEUI keeps a row of its own and never moves this one.
    """

    __tablename__ = "device_activity"

    municipality_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dev_eui: Mapped[str] = mapped_column(String(16), primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    network_device_id: Mapped[str | None] = mapped_column(String(200))
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    uplink_count: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    last_f_cnt: Mapped[int | None] = mapped_column(BigInteger)
    last_f_port: Mapped[int | None] = mapped_column(SmallInteger)
    last_payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    last_gateway_id: Mapped[str | None] = mapped_column(String(128))
    last_rssi_dbm: Mapped[float | None] = mapped_column(Float)
    last_snr_db: Mapped[float | None] = mapped_column(Float)
    last_spreading_factor: Mapped[int | None] = mapped_column(SmallInteger)
    last_join_at: Mapped[datetime | None]
    network_battery_percent: Mapped[float | None] = mapped_column(Float)
    network_margin_db: Mapped[int | None] = mapped_column(SmallInteger)


class GatewayHeard(Base):
    """Which municipalities' uplinks a gateway carried, and when last: kept by ingest.

    "The gateways that hear our devices" would otherwise mean scanning a month of
    receptions per request; this table has one row per gateway and municipality.
    """

    __tablename__ = "gateway_heard"

    gateway_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    municipality_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_heard_at: Mapped[datetime]


class GatewayActivity(Base):
    """Receptions per gateway in 5-minute bins, kept by ingest.

    A gateway's status (heard in which bins), its uplinks per hour and its uptime over
    30 days are read from here: at most 8,640 rows per gateway and month, where the
    receptions themselves are hundreds of thousands.
    """

    __tablename__ = "gateway_activity"

    gateway_id: Mapped[str] = mapped_column(String(128))
    bin_start: Mapped[datetime]
    receptions: Mapped[int] = mapped_column(Integer)

    # The count rides in the key's index, so health reads bins by index only: a
    # gateway's bins are spread over the whole table, one heap page each otherwise.
    __table_args__ = (PrimaryKeyConstraint("gateway_id", "bin_start", postgresql_include=["receptions"]),)


class GatewayDevice(Base):
    """Which DevEUIs a gateway hears, and when it last did, kept by ingest to the hour.

    `heard_at` is refreshed only once it is an hour behind, so that ingest writes a
    pair about once an hour instead of on every uplink; it may lag the true last
    reception by up to `GATEWAY_DEVICE_RESOLUTION`.
    """

    __tablename__ = "gateway_device"

    gateway_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    dev_eui: Mapped[str] = mapped_column(String(16), primary_key=True)
    heard_at: Mapped[datetime]

    __table_args__ = (Index("ix_gateway_device_dev_eui", "dev_eui"),)


class GatewayHeartbeat(Base):
    """A gateway's own status reports over time, for uptime over 7/30 days."""

    __tablename__ = "gateway_heartbeat"

    time: Mapped[datetime] = mapped_column(primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    online: Mapped[bool] = mapped_column(Boolean)
    rx_packets: Mapped[int | None] = mapped_column(BigInteger)
    rx_packets_ok: Mapped[int | None] = mapped_column(BigInteger)
    tx_packets: Mapped[int | None] = mapped_column(BigInteger)


class ApiKey(Base):
    """An API key: only a hash is kept; the prefix identifies it in lists and logs."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    municipality_id: Mapped[int | None] = mapped_column(
        ForeignKey("municipality.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class RejectedMessage(Base):
    """A message that could not be parsed, kept whole with the reason."""

    __tablename__ = "rejected_message"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    source: Mapped[str] = mapped_column(String(100))
    topic: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
