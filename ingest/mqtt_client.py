"""A paho client that reads the socket in large chunks.

paho reads every packet with at least three `recv` calls (command byte, length
bytes, body) and, for a subscriber, returns to `select()` after each packet. At
thousands of messages per second those system calls cost more than the rest of
receiving. This subclass fills a 64 KiB buffer per `recv` and keeps handing
packets to paho while the buffer holds data, so a burst is read with a few calls.

It overrides three paho methods (`_sock_recv`, `_sock_close`, `loop_read`);
paho-mqtt is pinned below 3, and every end-to-end test runs through this class.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

READ_CHUNK = 64 * 1024


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
