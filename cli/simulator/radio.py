"""How a frame gets from a device to the gateways: link budget, data rate, channel and airtime.

A device is heard only by gateways of its own network server. Signal strength falls with
distance (a log-distance model tuned to a small town at 868 MHz, with extra loss for
sensors buried in the road or sitting inside a steel bin) and varies per frame with
fading. The spreading factor is what adaptive data rate would settle on for the best
gateway, so far devices use slow data rates and long airtime, as in the field.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from cli.simulator.fleet import SimulatedDevice, SimulatedGateway, distance_m
from domain.use_case import UseCase

EU868_CHANNELS_HZ = (
    868_100_000,
    868_300_000,
    868_500_000,
    867_100_000,
    867_300_000,
    867_500_000,
    867_700_000,
    867_900_000,
)
BANDWIDTH_HZ = 125_000
TX_POWER_DBM = 14.0
GATEWAY_ANTENNA_GAIN_DB = 3.0
NOISE_LIMITED_SNR_DB = 10.0  # the SNR a strong LoRa signal saturates at in practice

# Demodulation floor per spreading factor (dBm, 125 kHz) and the SNR it needs (dB).
SENSITIVITY_DBM = {7: -123.0, 8: -126.0, 9: -129.0, 10: -132.0, 11: -134.5, 12: -137.0}
REQUIRED_SNR_DB = {7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0, 11: -17.5, 12: -20.0}
ADR_MARGIN_DB = 10.0

_EXTRA_LOSS_DB = {UseCase.PARKING: 12.0, UseCase.WASTE: 6.0, UseCase.SOIL: 4.0, UseCase.ENVIRONMENT: 0.0}


def path_loss_db(distance: float) -> float:
    """Median path loss over `distance` metres in a built-up area at 868 MHz."""
    return 120.0 + 30.0 * math.log10(max(distance, 30.0) / 1000.0)


def data_rate_index(spreading_factor: int) -> int:
    """EU868 data rate of a 125 kHz LoRa spreading factor (DR0 = SF12 … DR5 = SF7)."""
    return 12 - spreading_factor


def snr_for(rssi_dbm: float) -> float:
    return min(NOISE_LIMITED_SNR_DB, rssi_dbm + 120.0)


def airtime_s(payload_size: int, spreading_factor: int) -> float:
    """Time on air of a LoRaWAN data uplink with `payload_size` application bytes (EU868, CR 4/5).

    The PHY payload adds 13 bytes (MHDR, FHDR without options, FPort, MIC); the preamble is 8
    symbols; low data rate optimisation is on for SF11 and SF12.
    """
    symbol_s = (1 << spreading_factor) / BANDWIDTH_HZ
    phy_size = payload_size + 13
    low_rate = 1 if spreading_factor >= 11 else 0
    numerator = 8 * phy_size - 4 * spreading_factor + 28 + 16
    payload_symbols = 8 + max(math.ceil(numerator / (4 * (spreading_factor - 2 * low_rate))) * 5, 0)
    return (12.25 + payload_symbols) * symbol_s


@dataclass(frozen=True, slots=True)
class Hearing:
    """One gateway's reception of one frame."""

    gateway: SimulatedGateway
    rssi_dbm: int
    snr_db: float


@dataclass(frozen=True, slots=True)
class Link:
    """A device's fixed radio situation: its data rate and the gateways in reach, strongest first."""

    spreading_factor: int
    gateways: tuple[tuple[SimulatedGateway, float], ...]  # (gateway, median RSSI dBm)

    def hear(self, rng: random.Random) -> list[Hearing]:
        """Who hears this frame: the strongest gateway always, the others most of the time."""
        hearings: list[Hearing] = []
        for position, (gateway, median_rssi) in enumerate(self.gateways):
            if position > 0 and rng.random() < 0.2:
                continue
            rssi = median_rssi + rng.gauss(0.0, 3.0)
            snr = round((snr_for(rssi) + rng.gauss(0.0, 1.0)) * 4) / 4
            hearings.append(Hearing(gateway=gateway, rssi_dbm=round(rssi), snr_db=snr))
        return hearings


def plan_link(device: SimulatedDevice, gateways: tuple[SimulatedGateway, ...]) -> Link:
    """The link adaptive data rate would settle on, and up to three gateways that can hear it."""
    extra = _EXTRA_LOSS_DB[device.use_case]
    ranked = sorted(
        (
            (
                gateway,
                TX_POWER_DBM
                + GATEWAY_ANTENNA_GAIN_DB
                - extra
                - path_loss_db(
                    distance_m(device.latitude, device.longitude, gateway.latitude, gateway.longitude)
                ),
            )
            for gateway in gateways
        ),
        key=lambda pair: -pair[1],
    )
    if not ranked:
        raise ValueError(f"no gateway of {device.network_server} in {device.municipality}")
    best_snr = snr_for(ranked[0][1])
    spreading_factor = next(
        (sf for sf in range(7, 13) if best_snr - REQUIRED_SNR_DB[sf] >= ADR_MARGIN_DB),
        12,
    )
    in_reach = [pair for pair in ranked if pair[1] >= SENSITIVITY_DBM[spreading_factor] + 3.0]
    return Link(spreading_factor=spreading_factor, gateways=tuple(in_reach[:3] or ranked[:1]))
