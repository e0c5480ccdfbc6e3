"""From a received message to rows in an `IngestBatch`: parse, look up, decode.

The pipeline never raises for bad input: a message that cannot be parsed becomes
a `rejected_message` row with its reason, a payload that cannot be decoded is
stored raw with the decoder's error, an unknown DevEUI is stored as unclaimed.
Whatever arrives is kept, so nothing needs to be re-sent to be looked at again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from decoders import CodecRegistry, DecoderSource
from domain.errors import MessageRejected
from domain.ids import DevEui
from domain.uplink import DeviceStatus, GatewayStatus, Ignored, Join, JsonObject, NetworkEvent, Uplink
from ingest.adapters import parse_message
from ingest.config import SourceConfig
from ingest.metrics import IngestCounters, Outcome
from storage.device_registry import DeviceProfile, load_devices
from storage.redecode import DecodedFrame, Decoder, StoredFrame
from storage.uplinks import DecodeStatus, IngestBatch, RejectedRecord, UplinkRecord

_PREFERENCES: dict[str, tuple[DecoderSource, ...]] = {source.value: (source,) for source in DecoderSource}


class DeviceCache:
    """All registered devices by DevEUI, refreshed incrementally (see storage.device_registry)."""

    FULL_RELOAD_EVERY = 30

    def __init__(self) -> None:
        self._by_eui: dict[DevEui, DeviceProfile] = {}
        self._newest: datetime | None = None
        self._refreshes = 0
        self._lock = threading.Lock()

    def get(self, dev_eui: DevEui | None) -> DeviceProfile | None:
        return None if dev_eui is None else self._by_eui.get(dev_eui)

    def __len__(self) -> int:
        return len(self._by_eui)

    def refresh(self, conn: psycopg.Connection[Any]) -> list[DeviceProfile]:
        """Load changed devices; return those that are new or changed since the last look."""
        with self._lock:
            full = self._newest is None or self._refreshes % self.FULL_RELOAD_EVERY == 0
            self._refreshes += 1
            profiles = load_devices(conn, changed_after=None if full else self._newest)
            changed = [p for p in profiles if self._by_eui.get(p.dev_eui) != p]
            if full:
                self._by_eui = {p.dev_eui: p for p in profiles}
            else:
                self._by_eui.update((p.dev_eui, p) for p in profiles)
            if profiles:
                newest = max(p.updated_at for p in profiles)
                self._newest = newest if self._newest is None else max(self._newest, newest)
            return changed


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One message as it came off a broker or a webhook, before parsing."""

    source: SourceConfig
    topic: str
    body: bytes


class Pipeline:
    """Turns messages into batch rows; used by one writer thread at a time."""

    def __init__(
        self,
        devices: DeviceCache,
        codecs: CodecRegistry,
        municipality_ids: dict[str, int],
        counters: IngestCounters,
    ) -> None:
        self.devices = devices
        self.codecs = codecs
        self.municipality_ids = municipality_ids
        self.counters = counters

    def add_message(self, message: ReceivedMessage, batch: IngestBatch) -> None:
        source = message.source
        try:
            event = parse_message(source.kind, message.topic, message.body)
        except MessageRejected as rejected:
            batch.rejected.append(RejectedRecord(source.name, message.topic, rejected.reason, message.body))
            self.counters.add(source.name, Outcome.REJECTED)
            return
        self.add_event(source, event, batch)

    def add_events(
        self, source: SourceConfig, events: Iterable[NetworkEvent | RejectedRecord], batch: IngestBatch
    ) -> None:
        for event in events:
            if isinstance(event, RejectedRecord):
                batch.rejected.append(event)
                self.counters.add(source.name, Outcome.REJECTED)
            else:
                self.add_event(source, event, batch)

    def add_event(self, source: SourceConfig, event: NetworkEvent, batch: IngestBatch) -> None:
        municipality_id = self.municipality_ids[source.name]
        if isinstance(event, Uplink):
            batch.uplinks.append(self.decode(event, source.name, municipality_id))
            return
        self.counters.add(source.name, Outcome.OTHER_EVENT)
        if isinstance(event, Join):
            batch.joins.append((source.name, municipality_id, event))
        elif isinstance(event, DeviceStatus):
            batch.statuses.append(event)
        elif isinstance(event, GatewayStatus):
            batch.gateway_statuses.append(event)
        else:
            assert isinstance(event, Ignored)

    def decode(self, uplink: Uplink, source_name: str, municipality_id: int) -> UplinkRecord:
        profile = self.devices.get(uplink.dev_eui)
        if profile is None:
            return UplinkRecord(
                uplink=uplink,
                source=source_name,
                municipality_id=municipality_id,
                device_id=None,
                decode_status=DecodeStatus.UNCLAIMED,
            )
        return decode_for_device(self.codecs, uplink, profile, source_name)


def decode_for_device(
    codecs: CodecRegistry, uplink: Uplink, profile: DeviceProfile, source_name: str
) -> UplinkRecord:
    """Decode an uplink of a registered device; failures are kept on the record, never raised."""
    result = decode_frame(codecs, profile, uplink.f_port, uplink.payload, uplink.decoded_by_network)
    return UplinkRecord(
        uplink=uplink,
        source=source_name,
        municipality_id=profile.municipality_id,
        device_id=profile.device_id,
        decode_status=result.status,
        decoded=result.decoded,
        decoder_source=result.decoder_source,
        codec_id=result.codec_id,
        decode_error=result.error,
        readings=result.readings,
    )


def decode_frame(
    codecs: CodecRegistry,
    profile: DeviceProfile,
    f_port: int | None,
    payload: bytes,
    network_decoded: JsonObject | None,
) -> DecodedFrame:
    """One payload of a known device through the decoders, by the device's source preference."""
    preference = _PREFERENCES.get(profile.decoder_source or "")
    outcome = codecs.decode(
        codec_id=profile.codec_id,
        f_port=f_port,
        payload=payload,
        network_decoded=network_decoded,
        device_metadata=profile.metadata,
        **({"preference": preference} if preference else {}),
    )
    if outcome.ok:
        status = DecodeStatus.DECODED
    elif outcome.source is None and profile.codec_id is None and network_decoded is None:
        status = DecodeStatus.NO_DECODER
    else:
        status = DecodeStatus.FAILED
    return DecodedFrame(
        status=status,
        decoded=outcome.decoded,
        decoder_source=outcome.source.value if outcome.source else None,
        codec_id=outcome.codec_id,
        error=outcome.error,
        readings=outcome.readings,
    )


def frame_decoder(codecs: CodecRegistry) -> Decoder:
    """The decode callback that `storage.redecode` runs over stored frames: the live path's rules."""

    def decode(frame: StoredFrame, profile: DeviceProfile) -> DecodedFrame:
        return decode_frame(codecs, profile, frame.f_port, frame.payload, frame.network_decoded)

    return decode
