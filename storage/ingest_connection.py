"""One database connection of the ingest write path: opened, staged for COPY, its errors typed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from storage.database import Connection, connect, database_errors
from storage.uplinks import BatchResult, IngestBatch, latest_received_at, prepare_connection, write_batch


class IngestConnection:
    """A connection that ingest writes batches through; used by one thread at a time.

    Every failure leaves it as one of the typed errors of `domain.errors`:
    `StorageUnavailable` (its `TransientWriteError` for writes) when retrying can help,
    `UnstorableBatch` when the batch itself is refused. After `StorageUnavailable` the
    caller closes it and opens a new one: the old one may be broken half way.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, url: str, *, timeout_s: int = 5) -> IngestConnection:
        conn = connect(url, timeout_s=timeout_s)
        try:
            with database_errors():
                prepare_connection(conn)
        except BaseException:
            conn.close()
            raise
        return cls(conn)

    @property
    def closed(self) -> bool:
        return bool(self._conn.closed)

    def write(self, batch: IngestBatch) -> BatchResult:
        """Store one batch in one transaction (see `storage.uplinks.write_batch`)."""
        with database_errors():  # what `write_batch` does not translate itself, e.g. a closed connection
            return write_batch(self._conn, batch)

    @contextmanager
    def queries(self) -> Iterator[Connection]:
        """The connection for storage's query functions, whose driver errors leave as `StorageUnavailable`."""
        with database_errors():
            yield self._conn

    def latest_received_at(self, source_name: str) -> datetime | None:
        with database_errors():
            return latest_received_at(self._conn, source_name)

    def close(self) -> None:
        self._conn.close()
