"""Physical values to payload bytes, in each vendor's own frame layout.

These are the inverses of the built-in decoders: a simulated EM500-UDL sends exactly the
bytes a real one would, so everything after the network server is exercised as in the
field. Values are rounded to the resolution of the wire format and clamped to what its
fields can hold; an out-of-range value never raises, as a real sensor would also clip.

Layouts by family:
- Milesight IoT: records of channel id, channel type and a little-endian value (fPort 85).
- Decentlab protocol v2: version, device id, a bit mask of sensor groups, then big-endian
  16-bit words per present group (fPort 1).
- Elsys: records of a type byte and a big-endian value (fPort 5 by default).
- Dragino: fixed big-endian frames whose first word is the battery in mV (fPort 2).
- nwave and Bosch parking sensors: one status byte with bit 0 = occupied (fPort 1), a
  heartbeat (fPort 2) and a start-up frame (fPort 3).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cli.simulator.observations import (
    AirObservation,
    BinObservation,
    Observation,
    ParkingObservation,
    SoilObservation,
    WaterLevelObservation,
)


@dataclass(frozen=True, slots=True)
class Frame:
    f_port: int
    payload: bytes


def _clamp(value: float, low: int, high: int) -> int:
    return min(high, max(low, round(value)))


def _u8(value: float) -> bytes:
    return bytes((_clamp(value, 0, 0xFF),))


def _u16_le(value: float) -> bytes:
    return struct.pack("<H", _clamp(value, 0, 0xFFFF))


def _i16_le(value: float) -> bytes:
    return struct.pack("<h", _clamp(value, -0x8000, 0x7FFF))


def _u16_be(value: float) -> bytes:
    return struct.pack(">H", _clamp(value, 0, 0xFFFF))


def _i16_be(value: float) -> bytes:
    return struct.pack(">h", _clamp(value, -0x8000, 0x7FFF))


def _i8(value: float) -> bytes:
    return struct.pack("b", _clamp(value, -0x80, 0x7F))


# --- Milesight IoT ---------------------------------------------------------------------------------

MILESIGHT_F_PORT = 85


def milesight_battery(percent: float) -> bytes:
    return b"\x01\x75" + bytes((_clamp(percent, 0, 100),))


def milesight_temperature(celsius: float) -> bytes:
    return b"\x03\x67" + _i16_le(celsius * 10)


def milesight_humidity(percent: float) -> bytes:
    """Relative humidity, or soil moisture on the EM500-SMTC: one byte in half percent."""
    return b"\x04\x68" + _u8(percent * 2)


def encode_em500_udl(*, battery_percent: float, distance_mm: float) -> bytes:
    return milesight_battery(battery_percent) + b"\x03\x82" + _u16_le(distance_mm)


def encode_em310_udl(*, battery_percent: float, distance_mm: float, tilted: bool) -> bytes:
    return (
        encode_em500_udl(battery_percent=battery_percent, distance_mm=distance_mm) + b"\x04\x00" + _u8(tilted)
    )


def encode_em500_smtc(
    *, battery_percent: float, temperature_c: float, moisture_percent: float, conductivity_us_cm: float
) -> bytes:
    return (
        milesight_battery(battery_percent)
        + milesight_temperature(temperature_c)
        + milesight_humidity(moisture_percent)
        + b"\x05\x7f"
        + _u16_le(conductivity_us_cm)
    )


def encode_em500_swl(*, battery_percent: float, level_cm: float) -> bytes:
    return milesight_battery(battery_percent) + b"\x03\x77" + _u16_le(level_cm)


def encode_am307(
    *,
    battery_percent: float | None = None,
    temperature_c: float | None = None,
    humidity_percent: float | None = None,
    pir_activity: int | None = None,
    light_level: int | None = None,
    co2_ppm: float | None = None,
    tvoc: float | None = None,
    pressure_hpa: float | None = None,
    pm2_5_ug_m3: float | None = None,
    pm10_ug_m3: float | None = None,
) -> bytes:
    """An AM307 frame with the channels given, in the device's channel order."""
    records = (
        (battery_percent, milesight_battery),
        (temperature_c, milesight_temperature),
        (humidity_percent, milesight_humidity),
        (pir_activity, lambda value: b"\x05\x6a" + _u16_le(value)),
        (light_level, lambda value: b"\x06\xcb" + _u8(value)),
        (co2_ppm, lambda value: b"\x07\x7d" + _u16_le(value)),
        (tvoc, lambda value: b"\x08\x7d" + _u16_le(value)),
        (pressure_hpa, lambda value: b"\x09\x73" + _u16_le(value * 10)),
        (pm2_5_ug_m3, lambda value: b"\x0b\x7d" + _u16_le(value)),
        (pm10_ug_m3, lambda value: b"\x0c\x7d" + _u16_le(value)),
    )
    return b"".join(encode(value) for value, encode in records if value is not None)


# --- Elsys -----------------------------------------------------------------------------------------

ELSYS_F_PORT = 5


def encode_ers_co2(
    *,
    temperature_c: float,
    humidity_percent: float,
    light_lux: float,
    motion_count: int,
    co2_ppm: float,
    vdd_mv: float | None = None,
) -> bytes:
    frame = (
        b"\x01"
        + _i16_be(temperature_c * 10)
        + b"\x02"
        + _u8(humidity_percent)
        + b"\x04"
        + _u16_be(light_lux)
        + b"\x05"
        + _u8(motion_count)
        + b"\x06"
        + _u16_be(co2_ppm)
    )
    if vdd_mv is not None:
        frame += b"\x07" + _u16_be(vdd_mv)
    return frame


# --- Decentlab -------------------------------------------------------------------------------------

DECENTLAB_F_PORT = 1


def decentlab_frame(device_id: int, groups: Sequence[Sequence[int] | None]) -> bytes:
    """A protocol v2 frame: each present group sets its bit in the mask and appends its words."""
    flags = 0
    words: list[int] = []
    for index, group in enumerate(groups):
        if group is not None:
            flags |= 1 << index
            words.extend(group)
    return struct.pack(f">BHH{len(words)}H", 2, device_id, flags, *(min(0xFFFF, max(0, w)) for w in words))


def encode_dl_smtp(
    *, device_id: int, battery_v: float, depths: Sequence[tuple[float, float] | None] | None
) -> bytes:
    """DL-SMTP: eight depths of (moisture on the probe's raw scale, temperature °C); None = no sensor there.

    `depths=None` sends the battery-only frame the device uses when the probe did not answer.
    """
    probe: list[int] | None = None
    if depths is not None:
        padded = list(depths)[:8] + [None] * (8 - min(8, len(depths)))
        probe = []
        for depth in padded:
            if depth is None:
                probe += [0, 0]
            else:
                moisture, temperature_c = depth
                probe += [round(moisture * 500 + 2500), round(temperature_c * 100 + 32768)]
    return decentlab_frame(device_id, (probe, [round(battery_v * 1000)]))


@dataclass(frozen=True, slots=True)
class ParticulateMatter:
    """What the DL-PM's optical sensor reports: mass in µg/m³, counts per cm³, size in nm."""

    pm1_0_mass: float
    pm2_5_mass: float
    pm4_mass: float
    pm10_mass: float
    typical_particle_size_nm: float
    pm0_5_number: float
    pm1_0_number: float
    pm2_5_number: float
    pm4_number: float
    pm10_number: float


def encode_dl_pm(
    *,
    device_id: int,
    battery_v: float,
    particulate_matter: ParticulateMatter | None,
    air_temperature_c: float | None,
    air_humidity_percent: float | None,
    barometric_pressure_pa: float | None,
) -> bytes:
    pm = particulate_matter
    pm_words = (
        None
        if pm is None
        else [
            round(pm.pm1_0_mass * 10),
            round(pm.pm2_5_mass * 10),
            round(pm.pm4_mass * 10),
            round(pm.pm10_mass * 10),
            round(pm.typical_particle_size_nm),
            round(pm.pm0_5_number * 10),
            round(pm.pm1_0_number * 10),
            round(pm.pm2_5_number * 10),
            round(pm.pm4_number * 10),
            round(pm.pm10_number * 10),
        ]
    )
    climate_words = (
        None
        if air_temperature_c is None or air_humidity_percent is None
        else [
            round((air_temperature_c + 46.85) * 65536 / 175.72),
            round((air_humidity_percent + 6) * 65536 / 125),
        ]
    )
    pressure_words = None if barometric_pressure_pa is None else [round(barometric_pressure_pa / 2)]
    return decentlab_frame(device_id, ([round(battery_v * 1000)], pm_words, climate_words, pressure_words))


# --- Dragino ---------------------------------------------------------------------------------------

DRAGINO_F_PORT = 2


def _dragino_battery(millivolts: float, flag_bits: int) -> bytes:
    """The battery word: mV in the low 14 bits, device flags in the top two."""
    return struct.pack(">H", ((flag_bits & 0x3) << 14) | _clamp(millivolts, 0, 0x3FFF))


def encode_ldds75(*, battery_mv: float, distance_mm: float, interrupt: bool = False) -> bytes:
    """The 5-byte LDDS75 frame (firmware 1.2): battery, distance in mm, interrupt flag."""
    return _dragino_battery(battery_mv, 0) + _u16_be(distance_mm) + _u8(interrupt)


def encode_lse01(
    *,
    battery_mv: float,
    ds18b20_temperature_c: float,
    moisture_percent: float,
    soil_temperature_c: float,
    conductivity_us_cm: float,
    flags: int = 0,
    battery_flag_bits: int = 0,
) -> bytes:
    return (
        _dragino_battery(battery_mv, battery_flag_bits)
        + _i16_be(ds18b20_temperature_c * 10)
        + _u16_be(moisture_percent * 100)
        + _i16_be(soil_temperature_c * 100)
        + _u16_be(conductivity_us_cm)
        + _u8(flags)
    )


# --- Parking: nwave NPS405, Bosch TPS110 -----------------------------------------------------------


def nwave_duration_code(minutes: float) -> int:
    """The NPS405's 7-bit compressed duration: exact below 90 min, then 5-min and 60-min steps."""
    whole = max(0, int(minutes))
    if whole < 90:
        return whole
    if whole < 240:
        return 90 + (whole - 90) // 5
    if whole < 660:
        return 120 + (whole - 240) // 60
    return 127


def encode_nps405_status(*, occupied: bool, previous_state_minutes: float) -> bytes:
    return bytes(((nwave_duration_code(previous_state_minutes) << 1) | int(occupied),))


def encode_nps405_heartbeat(
    *, occupied: bool, battery_mv: float, temperature_c: float, trailer: bytes = b"\x00\x00\x00"
) -> bytes:
    """Heartbeat: occupancy and health, battery in 4 mV steps above 2.5 V, temperature in half degrees
    around 10 °C, then bytes the public decoder leaves undecoded (`trailer`)."""
    return bytes((int(occupied),)) + _u8((battery_mv - 2500) / 4) + _i8((temperature_c - 10.0) * 2) + trailer


NWAVE_RESET_CAUSES = {"rejoining_lorawan_network": 0, "watchdog": 1, "power_on": 2, "user_request": 3}


def encode_nps405_startup(*, firmware_version: str, reset_cause: str, occupied: bool) -> bytes:
    major, minor, patch = (int(part) for part in firmware_version.split("."))
    return bytes((major, minor, patch, NWAVE_RESET_CAUSES[reset_cause], int(occupied)))


def encode_tps110_status(*, occupied: bool) -> bytes:
    return bytes((int(occupied),))


def encode_tps110_heartbeat(*, occupied: bool, temperature_c: float) -> bytes:
    return bytes((int(occupied),)) + _i8(temperature_c)


# --- From observations -----------------------------------------------------------------------------


def _parking_frames(
    status: Callable[[ParkingObservation], bytes], heartbeat: Callable[[ParkingObservation], bytes]
) -> Callable[[ParkingObservation], Frame]:
    """A change of state goes out as a status frame (fPort 1); otherwise the sensor sends its heartbeat."""

    def encode(observation: ParkingObservation) -> Frame:
        if observation.changed:
            return Frame(1, status(observation))
        return Frame(2, heartbeat(observation))

    return encode


_PARKING: dict[str, Callable[[ParkingObservation], Frame]] = {
    "nwave/nps405-codec": _parking_frames(
        lambda o: encode_nps405_status(occupied=o.occupied, previous_state_minutes=o.previous_state_minutes),
        lambda o: encode_nps405_heartbeat(
            occupied=o.occupied, battery_mv=o.battery.millivolts - 150, temperature_c=o.temperature_c
        ),
    ),
    "bosch/tps110-0292-codec": _parking_frames(
        lambda o: encode_tps110_status(occupied=o.occupied),
        lambda o: encode_tps110_heartbeat(occupied=o.occupied, temperature_c=o.temperature_c),
    ),
}

_BINS: dict[str, Callable[[BinObservation], Frame]] = {
    "dragino/ldds75-codec": lambda o: Frame(
        DRAGINO_F_PORT, encode_ldds75(battery_mv=o.battery.millivolts, distance_mm=o.distance_mm)
    ),
    "milesight-iot/em310-udl-codec": lambda o: Frame(
        MILESIGHT_F_PORT,
        encode_em310_udl(battery_percent=o.battery.percent, distance_mm=o.distance_mm, tilted=o.tilted),
    ),
    "milesight-iot/em500-udl-codec": lambda o: Frame(
        MILESIGHT_F_PORT, encode_em500_udl(battery_percent=o.battery.percent, distance_mm=o.distance_mm)
    ),
}


def _smtp_moisture_scale(percent: float) -> float:
    """DL-SMTP moisture is on the probe's own scale; roughly 0 at 10 % and 4 at 50 % by volume."""
    return (percent - 10.0) / 10.0


def _device_number(dev_eui: str) -> int:
    """Decentlab devices carry their serial number in every frame; take it from the EUI's tail."""
    return int(dev_eui[-4:], 16)


def _soil_frame(codec_id: str, o: SoilObservation, dev_eui: str) -> Frame:
    if codec_id == "dragino/lse01-codec":
        return Frame(
            DRAGINO_F_PORT,
            encode_lse01(
                battery_mv=o.battery.millivolts,
                ds18b20_temperature_c=o.air_temperature_c,
                moisture_percent=o.moisture_percent,
                soil_temperature_c=o.soil_temperature_c,
                conductivity_us_cm=o.conductivity_us_cm,
            ),
        )
    if codec_id == "decentlab/dl-smtp-codec":
        depths = [(_smtp_moisture_scale(moisture), temperature) for moisture, temperature in o.profile]
        return Frame(
            DECENTLAB_F_PORT,
            encode_dl_smtp(
                device_id=_device_number(dev_eui), battery_v=o.battery.millivolts / 1000, depths=depths
            ),
        )
    if codec_id == "milesight-iot/em500-smtc-codec":
        return Frame(
            MILESIGHT_F_PORT,
            encode_em500_smtc(
                battery_percent=o.battery.percent,
                temperature_c=o.soil_temperature_c,
                moisture_percent=o.moisture_percent,
                conductivity_us_cm=o.conductivity_us_cm,
            ),
        )
    raise KeyError(codec_id)


def _air_frame(codec_id: str, o: AirObservation, dev_eui: str) -> Frame:
    if codec_id == "elsys/ers-co2-codec":
        return Frame(
            ELSYS_F_PORT,
            encode_ers_co2(
                temperature_c=o.temperature_c,
                humidity_percent=o.humidity_percent,
                light_lux=o.light_lux,
                motion_count=o.motion_count,
                co2_ppm=o.co2_ppm,
                vdd_mv=o.battery.millivolts,
            ),
        )
    if codec_id == "milesight-iot/am307-codec":
        return Frame(
            MILESIGHT_F_PORT,
            encode_am307(
                battery_percent=o.battery.percent,
                temperature_c=o.temperature_c,
                humidity_percent=o.humidity_percent,
                pir_activity=o.motion_count,
                light_level=min(5, round(o.light_lux / 150)),
                co2_ppm=o.co2_ppm,
                tvoc=o.tvoc_ppb / 100,
                pressure_hpa=o.pressure_hpa,
            ),
        )
    if codec_id == "decentlab/dl-pm-codec":
        pm2_5 = o.pm2_5_ug_m3
        particulate_matter = ParticulateMatter(
            pm1_0_mass=o.pm1_0_ug_m3,
            pm2_5_mass=pm2_5,
            pm4_mass=o.pm4_ug_m3,
            pm10_mass=o.pm10_ug_m3,
            typical_particle_size_nm=450 + 4 * pm2_5,
            pm0_5_number=6.5 * pm2_5,
            pm1_0_number=7.6 * pm2_5,
            pm2_5_number=7.7 * pm2_5,
            pm4_number=7.7 * pm2_5,
            pm10_number=7.7 * pm2_5,
        )
        return Frame(
            DECENTLAB_F_PORT,
            encode_dl_pm(
                device_id=_device_number(dev_eui),
                battery_v=o.battery.millivolts / 1000,
                particulate_matter=particulate_matter,
                air_temperature_c=o.temperature_c,
                air_humidity_percent=o.humidity_percent,
                barometric_pressure_pa=o.pressure_hpa * 100,
            ),
        )
    raise KeyError(codec_id)


def _water_frame(codec_id: str, o: WaterLevelObservation) -> Frame:
    if codec_id == "milesight-iot/em500-swl-codec":
        return Frame(
            MILESIGHT_F_PORT, encode_em500_swl(battery_percent=o.battery.percent, level_cm=o.level_cm)
        )
    raise KeyError(codec_id)


SUPPORTED_CODECS = frozenset(
    {
        *_PARKING,
        *_BINS,
        "dragino/lse01-codec",
        "decentlab/dl-smtp-codec",
        "milesight-iot/em500-smtc-codec",
        "elsys/ers-co2-codec",
        "milesight-iot/am307-codec",
        "decentlab/dl-pm-codec",
        "milesight-iot/em500-swl-codec",
    }
)


def encode_frame(codec_id: str, observation: Observation, *, dev_eui: str = "0000000000000000") -> Frame:
    """The frame a device with this codec sends for what it observed.

    Raises KeyError when the codec is unknown or does not measure this kind of observation.
    """
    match observation:
        case ParkingObservation():
            return _PARKING[codec_id](observation)
        case BinObservation():
            return _BINS[codec_id](observation)
        case SoilObservation():
            return _soil_frame(codec_id, observation, dev_eui)
        case AirObservation():
            return _air_frame(codec_id, observation, dev_eui)
        case WaterLevelObservation():
            return _water_frame(codec_id, observation)
