"""The store as one writing thread of ingest sees it: the connection set-up the bridge and webhooks share.

A connection is opened on first use and set up for the write path; after any
`StorageUnavailable` it is closed and the next call opens a new one, because a
connection that failed half way cannot be trusted with the next batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime

from domain.errors import StorageUnavailable
from ingest.config import SourceConfig
from ingest.pipeline import DeviceCache
from services.codec_following import ScriptFollower
from storage.device_registry import DeviceProfile, ensure_municipality
from storage.ingest_connection import IngestConnection
from storage.uplinks import BatchResult, IngestBatch


class StoreWriter:
    """One connection's worth of ingest writing; not shared between threads that run at once."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._connection: IngestConnection | None = None

    @property
    def is_open(self) -> bool:
        return self._connection is not None and not self._connection.closed

    def _open(self) -> IngestConnection:
        if self._connection is None or self._connection.closed:
            self._connection = IngestConnection.open(self.database_url)
        return self._connection

    @contextmanager
    def _connection_in_use(self) -> Iterator[IngestConnection]:
        try:
            yield self._open()
        except StorageUnavailable:
            self.close()
            raise

    def write(self, batch: IngestBatch) -> BatchResult:
        """Store one batch; raises `StorageUnavailable` (retry) or `UnstorableBatch` (its content)."""
        with self._connection_in_use() as connection:
            return connection.write(batch)

    def municipality_ids(self, sources: Iterable[SourceConfig]) -> dict[str, int]:
        """Each source's municipality id by source name, creating the municipalities that are missing."""
        with self._connection_in_use() as connection, connection.queries() as conn:
            return {
                source.name: ensure_municipality(conn, source.municipality, source.municipality_name)
                for source in sources
            }

    def refresh(self, devices: DeviceCache, scripts: ScriptFollower) -> list[DeviceProfile]:
        """Bring the device cache and the JS codecs up to date; return the devices new or changed."""
        with self._connection_in_use() as connection, connection.queries() as conn:
            changed = devices.refresh(conn)
            scripts.refresh(conn)
            return changed

    def latest_received_at(self, source_name: str) -> datetime | None:
        """When the newest stored uplink of a source was received: where a backfill starts."""
        with self._connection_in_use() as connection:
            return connection.latest_received_at(source_name)

    def close(self) -> None:
        """Close the connection (if any); the next call opens a new one."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
