"""Milesight IoT "channel / type / value" payloads (EM500, EM310, AM1xx/AM3xx, VS1xx, VS350).

A frame is a run of records: channel id, channel type, then a value whose length
the (id, type) pair fixes. Each device knows a subset of pairs, so each codec is
a table from the pair (as one 16-bit key) to `(value length, reader)`; the loop
is shared. Tables are built once at import so a decode allocates only its
output dict — this family carries the bulk of municipal traffic.

Behaviour chosen against the vendor decoders:
- An unknown pair ends decoding and keeps what was read (as the vendor decoders
  do): a newer firmware adding a channel must not lose the known values.
- A known pair whose value is cut short is a `DecodeError` at the record's
  value offset; the vendor decoders read `undefined` there and emit NaN.
- EM500-UDL distance is in millimetres as documented and as the vendor examples
  expect; one stored vendor decoder divides by 1000, which is not reproduced.
- EM310-UDL's tilt channel is emitted under `tilt` (the key of the vendor
  example) with the values "normal"/"tilt".
- VS121 region occupancy is read as a bitmap (bit i set = region i occupied),
  as documented. The vendor decoder compares the whole bitmap with the region
  index (`bitmap > i`), a bug that the vendor example reflects; not reproduced.
- AM307 decodes the PIR activity channel (0x05 0x6A) that the referenced vendor
  decoder does not know; the vendor example therefore lacks `activity`.
- The fPort is not checked: Milesight devices report on port 85 by default but
  the port is configurable, and the payload is self-describing.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping

from decoders.codec import BuiltinCodec, DecodeFunction
from domain.errors import DecodeError
from domain.uplink import JsonObject
from domain.use_case import CodecUseCase

# A reader stores the value found at `offset` into the output and returns how many bytes it used.
_Reader = Callable[[bytes, int, JsonObject], int]
_Table = Mapping[int, tuple[int, _Reader]]

_U16_LE = struct.Struct("<H")
_I16_LE = struct.Struct("<h")
_U32_LE = struct.Struct("<I")
_TWO_U16_LE = struct.Struct("<HH")
_DISTANCE_ALARM = struct.Struct("<BhhHH")
_HISTORY_HEAD = struct.Struct("<IB")
_FOUR_U16_LE = struct.Struct("<HHHH")


def _pair(channel_id: int, channel_type: int) -> int:
    return channel_id << 8 | channel_type


def _uint8(key: str, divisor: float | None = None) -> tuple[int, _Reader]:
    if divisor is None:

        def read(data: bytes, at: int, out: JsonObject) -> int:
            out[key] = data[at]
            return 1

    else:

        def read(data: bytes, at: int, out: JsonObject) -> int:
            out[key] = data[at] / divisor
            return 1

    return 1, read


def _struct_value(key: str, layout: struct.Struct, divisor: float | None = None) -> tuple[int, _Reader]:
    unpack_from = layout.unpack_from
    size = layout.size
    if divisor is None:

        def read(data: bytes, at: int, out: JsonObject) -> int:
            out[key] = unpack_from(data, at)[0]
            return size

    else:

        def read(data: bytes, at: int, out: JsonObject) -> int:
            out[key] = unpack_from(data, at)[0] / divisor
            return size

    return size, read


def _labelled_uint8(key: str, labels: Mapping[int, str], default: str) -> tuple[int, _Reader]:
    def read(data: bytes, at: int, out: JsonObject) -> int:
        out[key] = labels.get(data[at], default)
        return 1

    return 1, read


def _version(key: str) -> tuple[int, _Reader]:
    def read(data: bytes, at: int, out: JsonObject) -> int:
        out[key] = f"v{data[at]}.{data[at + 1]}"
        return 2

    return 2, read


def _read_protocol_version(data: bytes, at: int, out: JsonObject) -> int:
    out["ipso_version"] = f"v{data[at] >> 4}.{data[at] & 0x0F}"
    return 1


def _read_serial_number(data: bytes, at: int, out: JsonObject) -> int:
    out["sn"] = data[at : at + 8].hex()
    return 8


def _read_device_status(data: bytes, at: int, out: JsonObject) -> int:
    out["device_status"] = "on"
    return 1


def _read_reset_event(data: bytes, at: int, out: JsonObject) -> int:
    out["reset_event"] = "reset"
    return 1


_LORAWAN_CLASSES = {0: "Class A", 1: "Class B", 2: "Class C", 3: "Class CtoB"}

# Device-information records every Milesight device sends after joining.
_DEVICE_INFO: dict[int, tuple[int, _Reader]] = {
    _pair(0xFF, 0x01): (1, _read_protocol_version),
    _pair(0xFF, 0x09): _version("hardware_version"),
    _pair(0xFF, 0x0A): _version("firmware_version"),
    _pair(0xFF, 0x0B): (1, _read_device_status),
    _pair(0xFF, 0x0F): _labelled_uint8("lorawan_class", _LORAWAN_CLASSES, "unknown"),
    _pair(0xFF, 0x16): (8, _read_serial_number),
    _pair(0xFF, 0xFE): (1, _read_reset_event),
    _pair(0xFF, 0x03): _struct_value("report_interval", _U16_LE),
}

_BATTERY = {_pair(0x01, 0x75): _uint8("battery")}
_TEMPERATURE = {_pair(0x03, 0x67): _struct_value("temperature", _I16_LE, 10)}
_HUMIDITY = {_pair(0x04, 0x68): _uint8("humidity", 2)}
_DISTANCE = {_pair(0x03, 0x82): _struct_value("distance", _U16_LE)}

_ALARM_CONDITIONS = {0: "disable", 1: "below", 2: "above", 3: "between", 4: "outside"}


def _read_distance_alarm(data: bytes, at: int, out: JsonObject) -> int:
    flags, minimum, maximum, lock_time, continue_time = _DISTANCE_ALARM.unpack_from(data, at)
    out["distance_alarm_config"] = {
        "condition": _ALARM_CONDITIONS.get(flags & 0x07, "unknown"),
        "alarm_release_enable": bool(flags & 0x80),
        "min": minimum,
        "max": maximum,
        "lock_time": lock_time,
        "continue_time": continue_time,
    }
    return 9


def _read_reboot(data: bytes, at: int, out: JsonObject) -> int:
    out["reboot"] = "yes"
    return 1


_EM310_UDL: dict[int, tuple[int, _Reader]] = {
    **_DEVICE_INFO,
    **_BATTERY,
    **_DISTANCE,
    _pair(0x04, 0x00): _labelled_uint8("tilt", {0: "normal", 1: "tilt"}, "unknown"),
    _pair(0xFF, 0x02): _struct_value("collection_interval", _U16_LE),
    _pair(0xFF, 0x06): (9, _read_distance_alarm),
    _pair(0xFF, 0x10): (1, _read_reboot),
}

_AMBIENCE: dict[int, tuple[int, _Reader]] = {
    **_DEVICE_INFO,
    **_BATTERY,
    **_TEMPERATURE,
    **_HUMIDITY,
    _pair(0x05, 0x00): _labelled_uint8("pir", {1: "trigger"}, "idle"),
    _pair(0x05, 0x6A): _struct_value("activity", _U16_LE),
    _pair(0x06, 0xCB): _uint8("light_level"),
    _pair(0x07, 0x7D): _struct_value("co2", _U16_LE),
    _pair(0x08, 0x7D): _struct_value("tvoc", _U16_LE),
    _pair(0x09, 0x73): _struct_value("pressure", _U16_LE, 10),
    _pair(0x0A, 0x7D): _struct_value("hcho", _U16_LE, 100),
    _pair(0x0B, 0x7D): _struct_value("pm2_5", _U16_LE),
    _pair(0x0C, 0x7D): _struct_value("pm10", _U16_LE),
    _pair(0x0D, 0x7D): _struct_value("o3", _U16_LE, 100),
    _pair(0x0E, 0x01): _labelled_uint8("beep", {1: "yes"}, "no"),
}


def _read_workplace_occupancy(data: bytes, at: int, out: JsonObject) -> int:
    region_count = data[at + 1]
    bitmap = data[at + 2] << 8 | data[at + 3]
    out["people_counter_all"] = data[at]
    out["region_count"] = region_count
    out["regions"] = [{"count": bitmap >> index & 1, "index": index} for index in range(region_count)]
    return 4


def _line_counters(line: int) -> dict[int, tuple[int, _Reader]]:
    name = f"line_{line}"
    first_channel = 0x03 + 3 * (line - 1)

    def line_of(out: JsonObject) -> JsonObject:
        found: JsonObject | None = out.get(name)
        if found is None:
            found = out[name] = {}
        return found

    def read_total_in(data: bytes, at: int, out: JsonObject) -> int:
        line_of(out)["total_in"] = _U32_LE.unpack_from(data, at)[0]
        return 4

    def read_total_out(data: bytes, at: int, out: JsonObject) -> int:
        line_of(out)["total_out"] = _U32_LE.unpack_from(data, at)[0]
        return 4

    def read_period(data: bytes, at: int, out: JsonObject) -> int:
        counters = line_of(out)
        counters["period_in"], counters["period_out"] = _TWO_U16_LE.unpack_from(data, at)
        return 4

    return {
        _pair(first_channel, 0xD2): (4, read_total_in),
        _pair(first_channel + 1, 0xD2): (4, read_total_out),
        _pair(first_channel + 2, 0xCC): (4, read_period),
    }


_COUNT_ALARMS = {
    0: "threshold alarm release",
    1: "threshold alarm",
    3: "high temperature alarm",
    4: "high temperature alarm release",
}


def _in_out_pair(prefix: str, alarm: bool) -> tuple[int, _Reader]:
    key_in, key_out, key_alarm = f"{prefix}_in", f"{prefix}_out", f"{prefix}_count_alarm"

    def read(data: bytes, at: int, out: JsonObject) -> int:
        out[key_in], out[key_out] = _TWO_U16_LE.unpack_from(data, at)
        if alarm:
            out[key_alarm] = _COUNT_ALARMS.get(data[at + 4], "unknown")
            return 5
        return 4

    return (5 if alarm else 4), read


def _read_temperature_with_alarm(data: bytes, at: int, out: JsonObject) -> int:
    out["temperature"] = _I16_LE.unpack_from(data, at)[0] / 10
    out["temperature_alarm"] = _COUNT_ALARMS.get(data[at + 2], "unknown")
    return 3


def _read_history(data: bytes, at: int, out: JsonObject) -> int:
    timestamp, kind = _HISTORY_HEAD.unpack_from(data, at)
    entry: JsonObject = {"timestamp": timestamp}
    if kind == 0:
        entry["period_in"], entry["period_out"] = _TWO_U16_LE.unpack_from(data, at + 5)
        used = 9
    elif kind == 1:
        if at + 13 > len(data):
            raise DecodeError(f"history entry needs 13 bytes, {len(data) - at} left", at)
        counts = _FOUR_U16_LE.unpack_from(data, at + 5)
        entry["period_in"], entry["period_out"], entry["total_in"], entry["total_out"] = counts
        used = 13
    else:
        raise DecodeError(f"unknown history entry type {kind}", at + 4)
    history: list[JsonObject] = out.setdefault("history", [])
    history.append(entry)
    return used


_VS350: dict[int, tuple[int, _Reader]] = {
    **_DEVICE_INFO,
    **_BATTERY,
    **_TEMPERATURE,
    _pair(0x04, 0xCC): _in_out_pair("total", alarm=False),
    _pair(0x05, 0xCC): _in_out_pair("period", alarm=False),
    _pair(0x0A, 0xEF): _struct_value("timestamp", _U32_LE),
    _pair(0x83, 0x67): (3, _read_temperature_with_alarm),
    _pair(0x84, 0xCC): _in_out_pair("total", alarm=True),
    _pair(0x85, 0xCC): _in_out_pair("period", alarm=True),
    # The shortest history entry; longer kinds check their own length.
    _pair(0x20, 0xCE): (9, _read_history),
}


def _channel_decoder(table: _Table) -> DecodeFunction:
    lookup = table.get

    def decode(f_port: int, payload: bytes) -> JsonObject:
        out: JsonObject = {}
        at = 0
        end = len(payload)
        while at + 1 < end:
            entry = lookup(payload[at] << 8 | payload[at + 1])
            if entry is None:
                break
            size, read = entry
            start = at + 2
            if start + size > end:
                raise DecodeError(
                    f"channel 0x{payload[at]:02x} type 0x{payload[at + 1]:02x} needs {size} bytes, "
                    f"{end - start} left",
                    start,
                )
            at = start + read(payload, start, out)
        return out

    return decode


def _codec(codec: str, device: str, use_case: CodecUseCase, table: _Table) -> BuiltinCodec:
    return BuiltinCodec(f"milesight-iot/{codec}", (device,), use_case, _channel_decoder(table))


CODECS: tuple[BuiltinCodec, ...] = (
    _codec("em500-udl-codec", "em500-udl", CodecUseCase.WASTE, {**_DEVICE_INFO, **_BATTERY, **_DISTANCE}),
    _codec("em310-udl-codec", "em310-udl", CodecUseCase.WASTE, _EM310_UDL),
    _codec(
        "em500-smtc-codec",
        "em500-smtc",
        CodecUseCase.SOIL,
        {
            **_DEVICE_INFO,
            **_BATTERY,
            **_TEMPERATURE,
            **_HUMIDITY,
            _pair(0x05, 0x7F): _struct_value("conductivity", _U16_LE),
        },
    ),
    _codec(
        "em500-swl-codec",
        "em500-swl",
        CodecUseCase.WATER,
        {**_DEVICE_INFO, **_BATTERY, _pair(0x03, 0x77): _struct_value("level", _U16_LE)},
    ),
    _codec(
        "am103-codec",
        "am103",
        CodecUseCase.ENVIRONMENT,
        {
            **_DEVICE_INFO,
            **_BATTERY,
            **_TEMPERATURE,
            **_HUMIDITY,
            _pair(0x07, 0x7D): _struct_value("co2", _U16_LE),
        },
    ),
    _codec("am307-codec", "am307", CodecUseCase.ENVIRONMENT, _AMBIENCE),
    _codec(
        "vs121-codec",
        "vs121",
        CodecUseCase.COUNTING,
        {**_DEVICE_INFO, _pair(0x04, 0xC9): (4, _read_workplace_occupancy)},
    ),
    _codec(
        "vs133-codec",
        "vs133",
        CodecUseCase.COUNTING,
        {**_DEVICE_INFO, **{k: v for line in range(1, 5) for k, v in _line_counters(line).items()}},
    ),
    _codec("vs350-codec", "vs350", CodecUseCase.COUNTING, _VS350),
)
