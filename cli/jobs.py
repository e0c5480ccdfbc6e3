"""Background jobs of a running lorakom: alert evaluation and notification delivery.

They run in the process that serves the API (`lorakom run`, `lorakom api`, the demo).
Both jobs are safe in several processes at once, so a deployment with two API
processes needs no leader election; a database outage only delays them.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import httpx
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from storage.alerts import deliver_notifications, evaluate_alerts

log = logging.getLogger(__name__)

EVALUATE_EVERY_S = 60.0
DELIVER_EVERY_S = 15.0


def start_alert_jobs(engine: Engine, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        next_evaluation = 0.0
        with httpx.Client(timeout=10.0) as client:
            while not stop.is_set():
                now = datetime.now(UTC)
                try:
                    if now.timestamp() >= next_evaluation:
                        result = evaluate_alerts(engine, now)
                        next_evaluation = now.timestamp() + EVALUATE_EVERY_S
                        if result.opened or result.resolved:
                            log.info("alerts: %d opened, %d resolved", result.opened, result.resolved)
                    deliver_notifications(engine, client, now)
                except OperationalError as exc:
                    log.warning("alert jobs: database unreachable, will retry: %s", exc.orig)
                stop.wait(DELIVER_EVERY_S)

    thread = threading.Thread(target=run, name="lorakom-alerts", daemon=True)
    thread.start()
    return thread
