"""A paho client that reads the socket in large chunks.

paho reads every packet with at least three `recv` calls (command byte, length
bytes, body) and, for a subscriber, returns to `select()` after each packet. At
thousands of messages per second those system calls cost more than the rest of
receiving. This subclass fills a 64 KiB buffer per `recv` and keeps handing
packets to paho while the buffer holds data, so a burst is read with a few calls.

Acknowledgements go the same way: paho writes one PUBACK per `ack()` call, each
with a wake-up of its network thread and a `send`; `ack_many` queues the PUBACKs of
a whole committed batch as one write.

It overrides three paho methods (`_sock_recv`, `_sock_close`, `loop_read`) and uses
its packet queue (`_packet_queue`); paho-mqtt is pinned below 3, and every
end-to-end and fault test runs through this class.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

READ_CHUNK = 64 * 1024
PUBACK = 0x40
# PUBACK: fixed header, remaining length 2, packet id. MQTT 5 allows leaving out the
# reason code when it is 0 (success) and there are no properties, so both versions match.
_PUBACK_PACKET = struct.Struct("!BBH")


class BufferedClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_buffer = b""
        self._read_position = 0

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
            rc = super().loop_read(max_packets)
        return rc

    def ack_many(self, mids: Sequence[int]) -> None:
        """Acknowledge QoS 1 messages of the current connection in one write."""
        if not mids:
            return
        packet = b"".join([_PUBACK_PACKET.pack(PUBACK, 2, mid) for mid in mids])
        self._packet_queue(PUBACK, packet, 0, 0)
