"""A paho client that reads the socket in large chunks.

paho reads every packet with at least three `recv` calls (command byte, length
bytes, body) and, for a subscriber, returns to `select()` after each packet. At
thousands of messages per second those system calls cost more than the rest of
receiving. This subclass fills a 64 KiB buffer per `recv` and keeps handing
packets to paho while the buffer holds data, so a burst is read with a few calls.

Handing a PUBLISH to paho still costs more than everything else the bridge does
with it: three buffer reads through a dict of packet state, a `struct` format built
per field, an MQTT 5 `Properties` object, an `MQTTMessage`, a topic match against
the callback filters. With `on_publishes` set, the PUBLISH packets (QoS 0 and 1)
that lie complete in the buffer are cut out of it directly and handed over as one
list per read. Everything else, and any packet the fast path does not fully
understand (QoS 2, a topic alias, a length that does not add up, a packet split
across reads), is left where it is for paho to read, so paho's own checks and
errors apply to it. Properties of a fast-path PUBLISH are skipped: the bridge
reads none.

Acknowledgements go the same way: paho writes one PUBACK per `ack()` call, each
with a wake-up of its network thread and a `send`; `ack_many` queues the PUBACKs of
a whole committed batch as one write.

It overrides three paho methods (`_sock_recv`, `_sock_close`, `loop_read`) and uses
its socket and packet state (`_sock`, `_in_packet`, `_protocol`, `_msgtime_mutex`,
`_last_bytes_received`) and packet queue (`_packet_queue`). paho-mqtt is pinned to
the minor version this was written for; a later one may rename any of them, and an
assignment to a renamed attribute fails silently. So `fast_path_available` looks for
every one of them before the first connection, and without them the bridge takes
paho's public path (`on_message`, `ack`), slower but correct. The end-to-end and
fault tests run on both paths.
"""

from __future__ import annotations

import functools
import logging
import struct
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
PUBLISH = 0x30
PUBACK = 0x40
# PUBACK: fixed header, remaining length 2, packet id. MQTT 5 allows leaving out the
# reason code when it is 0 (success) and there are no properties, so both versions match.
_PUBACK_PACKET = struct.Struct("!BBH")


class Publish(NamedTuple):
    """A received PUBLISH as the bridge needs it; `mid` is 0 at QoS 0."""

    topic: str
    payload: bytes
    mid: int
    qos: int


PRIVATE_METHODS = ("_sock_recv", "_sock_close", "_packet_queue")
"""paho methods the fast path overrides or calls, looked for on the class."""
PRIVATE_STATE = ("_sock", "_in_packet", "_protocol", "_msgtime_mutex", "_last_bytes_received")
"""paho attributes the fast path reads or writes, looked for on a fresh client."""


def missing_private_members() -> list[str]:
    """The paho internals the fast path uses that this paho does not have (empty when all are there)."""
    missing = [name for name in PRIVATE_METHODS if not callable(getattr(mqtt.Client, name, None))]
    fresh = mqtt.Client(CallbackAPIVersion.VERSION2)
    missing += [name for name in PRIVATE_STATE if not hasattr(fresh, name)]
    in_packet = getattr(fresh, "_in_packet", None)
    if "_in_packet" not in missing and not (isinstance(in_packet, dict) and "command" in in_packet):
        missing.append("_in_packet['command']")
    if not callable(getattr(mqtt, "time_func", None)):
        missing.append("time_func")
    return missing


@functools.cache
def fast_path_available() -> bool:
    """Whether `BufferedClient` can work with the installed paho; warns once per process if not."""
    missing = missing_private_members()
    if missing:
        log.warning(
            "paho-mqtt %s lacks %s, which the fast packet path uses; receiving through paho's "
            "public on_message path instead (correct, but slower)",
            version("paho-mqtt"),
            ", ".join(missing),
        )
    return not missing


class BufferedClient(mqtt.Client):
    """paho's client reading the socket in chunks and cutting PUBLISH packets out itself (see above)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_buffer = b""
        self._read_position = 0
        # Called on paho's network thread with the PUBLISH packets cut from one read;
        # packets paho reads itself still go to `on_message`.
        self.on_publishes: Callable[[list[Publish]], None] | None = None

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._read_position >= len(self._read_buffer):
            chunk = super()._sock_recv(READ_CHUNK)  # raises BlockingIOError when nothing is there
            if not chunk:
                return chunk  # the peer closed the connection: paho handles the empty read
            self._read_buffer = chunk
            self._read_position = 0
        start = self._read_position
        end = min(start + bufsize, len(self._read_buffer))
        self._read_position = end
        return self._read_buffer[start:end]

    def _sock_close(self) -> None:
        self._read_buffer = b""
        self._read_position = 0
        super()._sock_close()

    def buffered_bytes(self) -> int:
        return len(self._read_buffer) - self._read_position

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        # paho would go back to select() after one packet; select() cannot see our buffer.
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None and self.buffered_bytes():
            if self.on_publishes is not None and self._in_packet["command"] == 0:
                self._hand_over_publishes(self.on_publishes)
                if not self.buffered_bytes():
                    break
            rc = super().loop_read(max_packets)
        return rc

    def _hand_over_publishes(self, on_publishes: Callable[[list[Publish]], None]) -> None:
        """Cut the complete QoS 0/1 PUBLISH packets at the front of the buffer; stop at anything else."""
        buffer = self._read_buffer
        end = len(buffer)
        position = self._read_position
        is_v5 = self._protocol == mqtt.MQTTv5
        publishes: list[Publish] = []
        while position < end:
            header = buffer[position]
            qos = (header >> 1) & 0x03
            if header & 0xF0 != PUBLISH or qos > 1:
                break
            remaining, body = _variable_integer(buffer, position + 1, end)
            packet_end = body + remaining
            if remaining < 0 or packet_end > end or remaining < 2:
                break
            topic_end = body + 2 + ((buffer[body] << 8) | buffer[body + 1])
            cursor = topic_end
            mid = 0
            if qos:
                cursor += 2
                if cursor > packet_end:
                    break
                mid = (buffer[topic_end] << 8) | buffer[topic_end + 1]
                if mid == 0:
                    break
            if is_v5:
                properties_length, cursor = _variable_integer(buffer, cursor, packet_end)
                if properties_length < 0:
                    break
                cursor += properties_length
            if topic_end == body + 2 or cursor > packet_end:
                break  # an empty topic (alias) or lengths that do not add up: paho decides
            try:
                topic = buffer[body + 2 : topic_end].decode()
            except UnicodeDecodeError:
                break
            publishes.append(Publish(topic, buffer[cursor:packet_end], mid, qos))
            position = packet_end
        if not publishes:
            return
        self._read_position = position
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()  # paho's keepalive clock
        on_publishes(publishes)

    def ack_many(self, mids: Sequence[int]) -> None:
        """Acknowledge QoS 1 messages of the current connection in one write."""
        if not mids:
            return
        packet = b"".join([_PUBACK_PACKET.pack(PUBACK, 2, mid) for mid in mids])
        self._packet_queue(PUBACK, packet, 0, 0)


def _variable_integer(buffer: bytes, start: int, end: int) -> tuple[int, int]:
    """MQTT's variable byte integer at `start`: (value, end position), or (-1, start) if cut or too long."""
    value = 0
    shift = 0
    position = start
    while position < end and shift <= 21:
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
    return -1, start
