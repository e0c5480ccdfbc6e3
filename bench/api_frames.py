"""The fleet's uplink frames and their receptions, generated for all devices at once as COPY blocks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bench.api_fleet import SLOTS_PER_DAY, Fleet
from bench.api_values import (
    SALT_HEARD,
    SALT_KEY,
    SALT_PAYLOAD,
    link_signal,
    lost,
    mix,
    slot_times,
    uniform,
)
from bench.arrays import Floats, Ints
from bench.binary_copy import Block, fixed_text, hex_words, pg_time

HEARD_SHARE = (1.0, 0.8, 0.5)
"""How often the primary, second and third gateway of a device hear one of its frames."""
UPLINK_CHUNK_SLOTS = SLOTS_PER_DAY


@dataclass(frozen=True, slots=True)
class Links:
    """The fleet's devices as arrays, for generating frames of all devices at once."""

    ids: Ints
    phase_s: Ints
    municipality_ids: Ints
    dev_euis: NDArray[np.void]
    spreading_factor: Ints
    gateways: Ints  # (devices, 3)
    rssi_dbm: Floats  # (devices, 3)
    gateway_ids: NDArray[np.void]
    offline_from_s: Ints

    @classmethod
    def of(cls, fleet: Fleet) -> Links:
        far = np.iinfo(np.int64).max
        return cls(
            ids=np.array([device.id for device in fleet.devices], dtype=np.int64),
            phase_s=np.array([device.phase_s for device in fleet.devices], dtype=np.int64),
            municipality_ids=np.array([device.town + 1 for device in fleet.devices], dtype=np.int64),
            dev_euis=fixed_text([device.dev_eui for device in fleet.devices]),
            spreading_factor=np.array([device.spreading_factor for device in fleet.devices], dtype=np.int64),
            gateways=np.array([device.gateways for device in fleet.devices], dtype=np.int64),
            rssi_dbm=np.array([device.rssi_dbm for device in fleet.devices], dtype=np.float64),
            gateway_ids=fixed_text([gateway.gateway_id for gateway in fleet.gateways]),
            offline_from_s=np.array(
                [far if g.offline_from_s is None else g.offline_from_s for g in fleet.gateways],
                dtype=np.int64,
            ),
        )


@dataclass(frozen=True, slots=True)
class Frames:
    """One chunk of frames of every device, in time order, with who heard each."""

    device: Ints  # index into the fleet's devices
    slot: Ints
    time_s: Ints
    heard: NDArray[np.bool_]  # (frames, 3)
    rssi: Floats  # (frames, 3)
    snr: Floats  # (frames, 3)


@dataclass(frozen=True, slots=True)
class Window:
    """Frames with `after_s < time <= until_s` (epoch seconds)."""

    after_s: int = -1
    until_s: int = np.iinfo(np.int64).max


def frames_of(links: Links, first_slot: int, end_slot: int, window: Window) -> Frames:
    slots = np.arange(first_slot, end_slot, dtype=np.int64)
    ids = links.ids[:, None]
    times = slot_times(ids, links.phase_s[:, None], slots)
    kept = ~lost(ids, slots) & (times > window.after_s) & (times <= window.until_s)
    device, column = np.nonzero(kept)
    time_s = times[kept]
    order = np.argsort(time_s, kind="stable")
    device, time_s = device[order], time_s[order]
    slot = slots[column[order]]
    frame_ids = links.ids[device]
    gateways = links.gateways[device]
    heard = np.empty((device.size, 3), dtype=bool)
    rssi = np.empty((device.size, 3))
    snr = np.empty((device.size, 3))
    for link in range(3):
        present = gateways[:, link] >= 0
        online = time_s < links.offline_from_s[np.where(present, gateways[:, link], 0)]
        chance = uniform(mix(frame_ids, slot, SALT_HEARD + link)) < HEARD_SHARE[link]
        heard[:, link] = present & online & chance
        rssi[:, link], snr[:, link] = link_signal(frame_ids, slot, link, links.rssi_dbm[device, link])
    return Frames(device, slot, time_s, heard, rssi, snr)


def frame_chunks(fleet: Fleet, links: Links, window: Window) -> Iterator[Frames]:
    for first in range(fleet.uplink_first_slot, fleet.end_slot, UPLINK_CHUNK_SLOTS):
        yield frames_of(links, first, min(fleet.end_slot, first + UPLINK_CHUNK_SLOTS), window)


def uplink_blocks(fleet: Fleet, links: Links, window: Window) -> Iterator[Block]:
    for frames in frame_chunks(fleet, links, window):
        ids = links.ids[frames.device]
        yield (
            frames.device.size,
            {
                "received_at": pg_time(frames.time_s),
                "uplink_key": hex_words(mix(ids, frames.slot, SALT_KEY)),
                "municipality_id": links.municipality_ids[frames.device],
                "source": b"bench",
                "network_server": b"tts",
                "dev_eui": links.dev_euis[frames.device],
                "device_id": ids,
                "f_cnt": frames.slot - fleet.first_slot,
                "f_port": 2,
                "payload": mix(ids, frames.slot, SALT_PAYLOAD).astype(">u8").view("V8"),
                "decode_status": b"decoded",
                "decoder_source": b"builtin",
                "spreading_factor": links.spreading_factor[frames.device],
                "frequency_hz": 868_100_000 + 200_000 * (frames.slot % 3),
                "gateway_count": frames.heard.sum(axis=1),
                "best_gateway_id": links.gateway_ids[links.gateways[frames.device, 0]],
                "best_rssi_dbm": frames.rssi[:, 0],
                "best_snr_db": frames.snr[:, 0],
            },
        )


def reception_blocks(
    fleet: Fleet, links: Links, window: Window, heard_range: dict[int, tuple[int, int]]
) -> Iterator[Block]:
    for frames in frame_chunks(fleet, links, window):
        frame, link = np.nonzero(frames.heard)
        order = np.argsort(frames.time_s[frame], kind="stable")
        frame, link = frame[order], link[order]
        device = frames.device[frame]
        ids = links.ids[device]
        gateway = links.gateways[device, link]
        times = frames.time_s[frame]
        for index in np.unique(gateway):
            mine = times[gateway == index]
            low, high = heard_range.get(int(index), (int(mine[0]), int(mine[-1])))
            heard_range[int(index)] = (min(low, int(mine[0])), max(high, int(mine[-1])))
        yield (
            frame.size,
            {
                "received_at": pg_time(times),
                "uplink_key": hex_words(mix(ids, frames.slot[frame], SALT_KEY)),
                "gateway_id": links.gateway_ids[gateway],
                "antenna": 0,
                "dev_eui": links.dev_euis[device],
                "municipality_id": links.municipality_ids[device],
                "rssi_dbm": frames.rssi[frame, link],
                "snr_db": frames.snr[frame, link],
                "channel": frames.slot[frame] % 8,
                "spreading_factor": links.spreading_factor[device],
            },
        )
