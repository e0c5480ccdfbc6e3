"""From a received message to rows in an `IngestBatch`: parse, look up, decode.

The pipeline never raises for bad input: a message that cannot be parsed becomes
a `rejected_message` row with its reason, a payload that cannot be decoded is
stored raw with the decoder's error, an unknown DevEUI is stored as unclaimed.
Whatever arrives is kept, so nothing needs to be re-sent to be looked at again.

Uplinks are decoded a batch at a time (`BatchBuilder.finish`), the way stored
frames are decoded again (`services.frame_decoding`): one registry call per batch, in
which JS codecs run in batches too.

Two things a message says are not taken on its word:
- Its DevEUI says which device it is, not whose: a source writes for devices of its
  own municipality, or of one that granted its town (`DeviceCache.for_source`). A
  frame of any other town's device is stored unclaimed for the source's own town
  and counted (`foreign_device`); the device's owner sees nothing of it.
- Its time: a network server's time more than `max_future` ahead of the bridge's
  clock is refused. The uplink is stored under the bridge's receive time, which is
  what a believable server would have said give or take its delay, with the claim
  kept in `claimed_received_at` (the flag); joins and gateway statuses take the
  bridge's time too. So no summary that only moves forward can be frozen by a date
  years ahead, and nothing of the message is lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from decoders import CodecRegistry
from domain.decoding import DecodeStatus
from domain.errors import MessageRejected
from domain.ids import DevEui
from domain.uplink import (
    DEFAULT_MAX_FUTURE,
    DeviceStatus,
    GatewayStatus,
    Ignored,
    Join,
    NetworkEvent,
    Uplink,
    time_is_believable,
)
from ingest.adapters import parse_message
from ingest.config import SourceConfig
from ingest.metrics import IngestCounters, Outcome
from services.frame_decoding import FrameToDecode, decode_frames
from storage.database import Connection
from storage.device_registry import (
    DeviceProfile,
    IngestGrants,
    load_devices,
    load_ingest_grants,
    may_deliver,
)
from storage.redecode import DecodedFrame
from storage.uplinks import IngestBatch, RejectedRecord, UplinkRecord


@dataclass(frozen=True, slots=True)
class DeviceLookup:
    """What a source may do with a DevEUI: write for `profile`, or keep the frame as its own unclaimed."""

    profile: DeviceProfile | None
    foreign: bool = False
    """Registered, but in a municipality that did not grant the source's town."""


_UNKNOWN = DeviceLookup(None)
_FOREIGN = DeviceLookup(None, foreign=True)


class DeviceCache:
    """All registered devices and the ingest grants, refreshed incrementally (see storage.device_registry).

    There is no lookup by DevEUI alone: a DevEUI is answered for a source's municipality.
    """

    FULL_RELOAD_EVERY = 30

    def __init__(self) -> None:
        self._by_eui: dict[DevEui, DeviceProfile] = {}
        self._grants: IngestGrants = frozenset()
        self._newest: datetime | None = None
        self._refreshes = 0
        self._lock = threading.Lock()

    def for_source(self, dev_eui: DevEui | None, source_municipality_id: int) -> DeviceLookup:
        """The device a source of `source_municipality_id` may write for under this DevEUI, if any."""
        profile = None if dev_eui is None else self._by_eui.get(dev_eui)
        if profile is None:
            return _UNKNOWN
        if may_deliver(profile, source_municipality_id, self._grants):
            return DeviceLookup(profile)
        return _FOREIGN

    def __len__(self) -> int:
        return len(self._by_eui)

    def refresh(self, conn: Connection) -> list[DeviceProfile]:
        """Load changed devices; return those that are new or changed since the last look."""
        with self._lock:
            full = self._newest is None or self._refreshes % self.FULL_RELOAD_EVERY == 0
            self._refreshes += 1
            profiles = load_devices(conn, changed_after=None if full else self._newest)
            self._grants = load_ingest_grants(conn)
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
        *,
        max_future: timedelta = DEFAULT_MAX_FUTURE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.devices = devices
        self.codecs = codecs
        self.municipality_ids = municipality_ids
        self.counters = counters
        self.max_future = max_future
        self.clock = clock

    def new_batch(self, *, counted: bool = True) -> BatchBuilder:
        """`counted=False` for a batch built again from messages already counted once (a retry)."""
        return BatchBuilder(self, counted=counted)


@dataclass(slots=True)
class _Undecoded:
    """An uplink of a registered device, waiting for its batch to be decoded together."""

    uplink: Uplink
    profile: DeviceProfile
    source_name: str
    claimed_received_at: datetime | None

    def frame(self) -> FrameToDecode:
        uplink = self.uplink
        return (self.profile, uplink.f_port, uplink.payload, uplink.decoded_by_network)


class BatchBuilder:
    """One `IngestBatch` in the making; `finish` decodes its uplinks and hands it over.

    Uplinks of registered devices are decoded together when the batch is finished,
    in one `CodecRegistry.decode_many` call, so that a JS codec runs once per batch
    instead of once per uplink. The batch exists only as `finish` returns it, so
    rows without their decode results cannot be written by mistake.
    """

    def __init__(self, pipeline: Pipeline, *, counted: bool = True) -> None:
        self._pipeline = pipeline
        self._counted = counted
        self._batch = IngestBatch()
        self._uplinks: list[UplinkRecord | _Undecoded] = []
        self._finished = False

    def add_message(self, message: ReceivedMessage) -> None:
        source = message.source
        try:
            event = parse_message(source.kind, message.topic, message.body)
        except MessageRejected as rejected:
            self.add_rejected(
                source, RejectedRecord(source.name, message.topic, rejected.reason, message.body)
            )
            return
        self.add_event(source, event)

    def add_events(self, source: SourceConfig, events: Iterable[NetworkEvent | RejectedRecord]) -> None:
        for event in events:
            if isinstance(event, RejectedRecord):
                self.add_rejected(source, event)
            else:
                self.add_event(source, event)

    def add_rejected(self, source: SourceConfig, rejected: RejectedRecord) -> None:
        self._batch.rejected.append(rejected)
        if self._counted:
            self._pipeline.counters.add(source.name, Outcome.REJECTED)

    def _count(self, source: SourceConfig, outcome: Outcome) -> None:
        if self._counted:
            self._pipeline.counters.add(source.name, outcome)

    def _bridge_time_if_refused(self, source: SourceConfig, claimed: datetime) -> datetime | None:
        """The bridge's time when `claimed` lies too far ahead of it (counted), else None."""
        now = self._pipeline.clock()
        if time_is_believable(claimed, now, self._pipeline.max_future):
            return None
        self._count(source, Outcome.FUTURE_TIME)
        return now

    def add_event(self, source: SourceConfig, event: NetworkEvent) -> None:
        batch = self._batch
        source_town = self._pipeline.municipality_ids[source.name]
        if isinstance(event, Uplink):
            self._add_uplink(source, source_town, event)
            return
        self._count(source, Outcome.OTHER_EVENT)
        if isinstance(event, Join):
            if (now := self._bridge_time_if_refused(source, event.received_at)) is not None:
                event = replace(event, received_at=now)
            batch.joins.append((source.name, self._town_of(event.dev_eui, source_town), event))
        elif isinstance(event, DeviceStatus):
            batch.statuses.append((self._town_of(event.dev_eui, source_town), event))
        elif isinstance(event, GatewayStatus):
            if (now := self._bridge_time_if_refused(source, event.observed_at)) is not None:
                event = replace(event, observed_at=now)
            batch.gateway_statuses.append((source_town, event))
        else:
            assert isinstance(event, Ignored)

    def _town_of(self, dev_eui: DevEui | None, source_town: int) -> int:
        """Whose device activity an event of this DevEUI belongs to: the owner's if it may deliver."""
        profile = self._pipeline.devices.for_source(dev_eui, source_town).profile
        return source_town if profile is None else profile.municipality_id

    def _add_uplink(self, source: SourceConfig, source_town: int, uplink: Uplink) -> None:
        claimed = None
        if (now := self._bridge_time_if_refused(source, uplink.received_at)) is not None:
            claimed = uplink.received_at
            uplink = replace(uplink, received_at=now)
        lookup = self._pipeline.devices.for_source(uplink.dev_eui, source_town)
        if lookup.profile is not None:
            self._uplinks.append(_Undecoded(uplink, lookup.profile, source.name, claimed))
            return
        if lookup.foreign:
            self._count(source, Outcome.FOREIGN)
        self._uplinks.append(
            UplinkRecord(
                uplink=uplink,
                source=source.name,
                municipality_id=source_town,
                device_id=None,
                decode_status=DecodeStatus.UNCLAIMED,
                claimed_received_at=claimed,
                foreign=lookup.foreign,
            )
        )

    def finish(self) -> IngestBatch:
        """Decode the uplinks of registered devices, all in one go, and return the batch."""
        if self._finished:
            raise RuntimeError("this batch was finished already")
        self._finished = True
        undecoded = [entry for entry in self._uplinks if isinstance(entry, _Undecoded)]
        results = iter(decode_frames(self._pipeline.codecs, [entry.frame() for entry in undecoded]))
        self._batch.uplinks = [
            entry if isinstance(entry, UplinkRecord) else _record(entry, next(results))
            for entry in self._uplinks
        ]
        return self._batch


def _record(entry: _Undecoded, result: DecodedFrame) -> UplinkRecord:
    return UplinkRecord(
        uplink=entry.uplink,
        source=entry.source_name,
        municipality_id=entry.profile.municipality_id,
        device_id=entry.profile.device_id,
        claimed_received_at=entry.claimed_received_at,
        decode_status=result.status,
        decoded=result.decoded,
        decoder_source=result.decoder_source,
        codec_id=result.codec_id,
        decode_error=result.error,
        readings=result.readings,
    )
