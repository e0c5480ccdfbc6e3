"""Cheap construction of the per-message event types on the adapters' hot path.

`Uplink`, `Reception`, `Radio` and `Location` are frozen slotted dataclasses;
their generated `__init__` stores each field through `object.__setattr__`,
which costs about three times as much as storing it through the slot's own
descriptor. The bridge builds one uplink, one radio and one to three
receptions and locations per message, thousands of times per second, so the
adapters build them here: a bare instance, then every slot set once.

The result is the same object the constructor makes (same type, same values,
same equality and hash). That holds only while the classes have no
`__post_init__`, no `InitVar` and exactly the fields listed here, so this
module checks that on import and refuses to load otherwise: a field added to
`domain.uplink` must be added here too, never silently left unset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any

from domain.ids import DevEui, GatewayId
from domain.uplink import JsonObject, Location, NetworkServer, Radio, Reception, Uplink

_UPLINK_FIELDS = (
    "network_server",
    "uplink_key",
    "received_at",
    "dev_eui",
    "payload",
    "f_port",
    "f_cnt",
    "network_device_id",
    "application_id",
    "dev_addr",
    "decoded_by_network",
    "receptions",
    "radio",
    "confirmed",
    "simulated",
    "battery_percent",
)
_RECEPTION_FIELDS = (
    "gateway_id",
    "rssi_dbm",
    "snr_db",
    "channel",
    "antenna",
    "received_at",
    "gateway_location",
    "gateway_eui",
)
_RADIO_FIELDS = ("spreading_factor", "bandwidth_hz", "frequency_hz", "coding_rate", "data_rate", "airtime_s")
_LOCATION_FIELDS = ("latitude", "longitude", "altitude_m")


def _setters(cls: type, names: tuple[str, ...]) -> list[Callable[[object, Any], None]]:
    """The slot setters of `cls`, once `names` are known to be all its fields and init does nothing else."""
    fields = dataclasses.fields(cls)
    if tuple(field.name for field in fields) != names or any(not field.init for field in fields):
        raise ImportError(f"ingest.adapters.construct is out of date with {cls.__name__}'s fields")
    if hasattr(cls, "__post_init__") or not hasattr(cls, "__slots__"):
        raise ImportError(f"ingest.adapters.construct cannot build {cls.__name__} without its __init__")
    return [cls.__dict__[name].__set__ for name in names]


_new = object.__new__

(
    _u_server,
    _u_key,
    _u_received,
    _u_eui,
    _u_payload,
    _u_port,
    _u_cnt,
    _u_device,
    _u_application,
    _u_addr,
    _u_decoded,
    _u_receptions,
    _u_radio,
    _u_confirmed,
    _u_simulated,
    _u_battery,
) = _setters(Uplink, _UPLINK_FIELDS)
(
    _r_gateway,
    _r_rssi,
    _r_snr,
    _r_channel,
    _r_antenna,
    _r_received,
    _r_location,
    _r_eui,
) = _setters(Reception, _RECEPTION_FIELDS)
_d_sf, _d_bandwidth, _d_frequency, _d_coding, _d_rate, _d_airtime = _setters(Radio, _RADIO_FIELDS)
_l_latitude, _l_longitude, _l_altitude = _setters(Location, _LOCATION_FIELDS)


def new_uplink(
    network_server: NetworkServer,
    uplink_key: str,
    received_at: datetime,
    dev_eui: DevEui | None,
    payload: bytes,
    f_port: int | None,
    f_cnt: int | None,
    network_device_id: str | None,
    application_id: str | None,
    dev_addr: str | None,
    decoded_by_network: JsonObject | None,
    receptions: tuple[Reception, ...],
    radio: Radio,
    confirmed: bool,
    simulated: bool,
    battery_percent: float | None,
) -> Uplink:
    """`Uplink(...)` with every field given, in field order."""
    uplink: Uplink = _new(Uplink)
    _u_server(uplink, network_server)
    _u_key(uplink, uplink_key)
    _u_received(uplink, received_at)
    _u_eui(uplink, dev_eui)
    _u_payload(uplink, payload)
    _u_port(uplink, f_port)
    _u_cnt(uplink, f_cnt)
    _u_device(uplink, network_device_id)
    _u_application(uplink, application_id)
    _u_addr(uplink, dev_addr)
    _u_decoded(uplink, decoded_by_network)
    _u_receptions(uplink, receptions)
    _u_radio(uplink, radio)
    _u_confirmed(uplink, confirmed)
    _u_simulated(uplink, simulated)
    _u_battery(uplink, battery_percent)
    return uplink


def new_reception(
    gateway_id: GatewayId,
    rssi_dbm: float | None,
    snr_db: float | None,
    channel: int | None,
    antenna: int,
    received_at: datetime | None,
    gateway_location: Location | None,
    gateway_eui: str | None,
) -> Reception:
    """`Reception(...)` with every field given, in field order."""
    reception: Reception = _new(Reception)
    _r_gateway(reception, gateway_id)
    _r_rssi(reception, rssi_dbm)
    _r_snr(reception, snr_db)
    _r_channel(reception, channel)
    _r_antenna(reception, antenna)
    _r_received(reception, received_at)
    _r_location(reception, gateway_location)
    _r_eui(reception, gateway_eui)
    return reception


def new_radio(
    spreading_factor: int | None,
    bandwidth_hz: int | None,
    frequency_hz: int | None,
    coding_rate: str | None,
    data_rate: int | None,
    airtime_s: float | None,
) -> Radio:
    """`Radio(...)` with every field given, in field order."""
    radio: Radio = _new(Radio)
    _d_sf(radio, spreading_factor)
    _d_bandwidth(radio, bandwidth_hz)
    _d_frequency(radio, frequency_hz)
    _d_coding(radio, coding_rate)
    _d_rate(radio, data_rate)
    _d_airtime(radio, airtime_s)
    return radio


def new_location(latitude: float, longitude: float, altitude_m: float | None) -> Location:
    """`Location(...)` with every field given, in field order."""
    location: Location = _new(Location)
    _l_latitude(location, latitude)
    _l_longitude(location, longitude)
    _l_altitude(location, altitude_m)
    return location
