"""A device's observation to the frame its codec sends: which family's encoder, on which fPort."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cli.simulator.encoders.decentlab import DECENTLAB_F_PORT, ParticulateMatter, encode_dl_pm, encode_dl_smtp
from cli.simulator.encoders.dragino import DRAGINO_F_PORT, encode_ldds75, encode_lse01
from cli.simulator.encoders.elsys import ELSYS_F_PORT, encode_ers_co2
from cli.simulator.encoders.milesight import (
    MILESIGHT_F_PORT,
    encode_am307,
    encode_em310_udl,
    encode_em500_smtc,
    encode_em500_swl,
    encode_em500_udl,
)
from cli.simulator.encoders.parking import (
    encode_nps405_heartbeat,
    encode_nps405_status,
    encode_tps110_heartbeat,
    encode_tps110_status,
)
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
