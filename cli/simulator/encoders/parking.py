"""nwave NPS405 and Bosch TPS110 parking frames: status (fPort 1), heartbeat (2) and start-up (3)."""

from __future__ import annotations

from cli.simulator.encoders.wire import i8, u8


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
    return bytes((int(occupied),)) + u8((battery_mv - 2500) / 4) + i8((temperature_c - 10.0) * 2) + trailer


NWAVE_RESET_CAUSES = {"rejoining_lorawan_network": 0, "watchdog": 1, "power_on": 2, "user_request": 3}


def encode_nps405_startup(*, firmware_version: str, reset_cause: str, occupied: bool) -> bytes:
    major, minor, patch = (int(part) for part in firmware_version.split("."))
    return bytes((major, minor, patch, NWAVE_RESET_CAUSES[reset_cause], int(occupied)))


def encode_tps110_status(*, occupied: bool) -> bytes:
    return bytes((int(occupied),))


def encode_tps110_heartbeat(*, occupied: bool, temperature_c: float) -> bytes:
    return bytes((int(occupied),)) + i8(temperature_c)
