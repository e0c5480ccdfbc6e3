"""Background jobs of a running lorakom: alert evaluation, notification delivery, the reader guard.

Alerts are evaluated when new data is committed (the bridge nudges the job) and
every minute regardless (rules about silence and offline gateways fire without any
new data). Nudges are coalesced: at most one evaluation per `MIN_GAP_S`, because an
evaluation reads every rule while the bridge may commit many batches a second.

Both jobs are safe in several processes at once, so a deployment with two API
processes needs no leader election; a database outage only delays them.

Deliveries are signed with secrets stored encrypted under `LORAKOM_SECRET_KEYS`;
`start_alert_jobs` opens every stored secret once before starting, so a missing or
wrong key stops the process at start with a message naming the variable.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from services.alerts import evaluate_alerts
from services.webhook_delivery import deliver_notifications
from services.webhook_targets import WebhookSender, WebhookSettings
from storage.alerts import verify_stored_secrets
from storage.database import create_database_engine
from storage.reader_roles import ReaderSettings, cancel_overrunning_reader_queries, guard_privileges
from storage.secret_box import SecretBox, SecretSettings

log = logging.getLogger(__name__)

EVALUATE_EVERY_S = 60.0
DELIVER_EVERY_S = 15.0
MIN_GAP_S = 5.0


class AlertJobs:
    def __init__(
        self,
        engine: Engine,
        stop: threading.Event,
        *,
        box: SecretBox | None = None,
        webhooks: WebhookSettings | None = None,
        evaluate_every_s: float = EVALUATE_EVERY_S,
        min_gap_s: float = MIN_GAP_S,
    ) -> None:
        self.engine = engine
        self.stop = stop
        self.box = box
        self.webhooks = webhooks or WebhookSettings()
        self.evaluate_every_s = evaluate_every_s
        self.min_gap_s = min_gap_s
        self.evaluations = 0
        self._nudged = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lorakom-alerts", daemon=True)

    def start(self) -> AlertJobs:
        self._thread.start()
        return self

    def join(self) -> None:
        """Wait until the thread has ended (after `stop` was set)."""
        self._thread.join()

    def nudge(self) -> None:
        """New readings are committed: evaluate soon (called from the bridge's writer threads)."""
        self._nudged.set()

    def _run(self) -> None:
        last_evaluation = float("-inf")
        last_delivery = float("-inf")
        with WebhookSender(self.webhooks) as sender:
            while not self.stop.is_set():
                if self._nudged.is_set():
                    # Nudged within the gap: sleep out the rest of it. Waiting on the event
                    # that is already set would return at once, over and over, for seconds.
                    self.stop.wait(max(0.0, last_evaluation + self.min_gap_s - time.monotonic()))
                else:
                    self._nudged.wait(1.0)
                if self.stop.is_set():
                    break
                now_s = time.monotonic()
                due = now_s - last_evaluation >= self.evaluate_every_s
                nudged = self._nudged.is_set() and now_s - last_evaluation >= self.min_gap_s
                try:
                    if due or nudged:
                        self._nudged.clear()
                        last_evaluation = now_s
                        result = evaluate_alerts(self.engine, datetime.now(UTC))
                        self.evaluations += 1
                        if result.opened or result.resolved:
                            log.info("alerts: %d opened, %d resolved", result.opened, result.resolved)
                    # Without a key no subscription can exist (creating one needs it).
                    if self.box is not None and (now_s - last_delivery >= DELIVER_EVERY_S or due or nudged):
                        last_delivery = now_s
                        deliver_notifications(self.engine, sender, self.box, datetime.now(UTC))
                except OperationalError as exc:
                    log.warning("alert jobs: database unreachable, will retry: %s", exc.orig)


def start_alert_jobs(
    engine: Engine,
    stop: threading.Event,
    *,
    secrets: SecretSettings | None = None,
    webhooks: WebhookSettings | None = None,
) -> AlertJobs:
    """The jobs of the environment's settings, once every stored secret has been opened."""
    box = SecretBox.from_settings(secrets or SecretSettings())
    verify_stored_secrets(engine, box)
    return AlertJobs(engine, stop, box=box, webhooks=webhooks or WebhookSettings()).start()


class ReaderQueryGuard:
    """Cancels dashboard logins' queries that run longer than `ReaderSettings.query_limit_s`.

    A dashboard login's `statement_timeout` is only a default: any session may SET it
    to 0 and hold a core and a connection for as long as it likes. This limit lives
    outside the reader's session, so nothing the reader sends can lift it. Every
    lorakom process runs one; several cancelling the same query is harmless.
    """

    def __init__(self, engine: Engine, stop: threading.Event, settings: ReaderSettings) -> None:
        self.engine = engine
        self.stop = stop
        self.settings = settings
        self.cancelled = 0
        self._thread = threading.Thread(target=self._run, name="lorakom-reader-guard", daemon=True)

    def start(self) -> ReaderQueryGuard:
        self._thread.start()
        return self

    def check_once(self) -> int:
        """One look; returns how many queries it cancelled."""
        with self.engine.begin() as conn:
            cancelled = cancel_overrunning_reader_queries(conn, self.settings.query_limit_s)
        for query in cancelled:
            log.warning(
                "reader guard: %s of %s (pid %d) after %.0f s",
                "ended the idle transaction" if query.ended_session else "cancelled a query",
                query.role_name,
                query.pid,
                query.running_s,
            )
        self.cancelled += len(cancelled)
        return len(cancelled)

    def _run(self) -> None:
        warned = False
        while not self.stop.wait(self.settings.guard_interval_s):
            try:
                if not warned:
                    with self.engine.connect() as conn:
                        missing = guard_privileges(conn)
                    warned = True
                    if missing:
                        log.warning(
                            "reader guard: this database login lacks %s, so dashboard queries over %s s"
                            " are not cancelled; GRANT them to it (deploy/README.md)",
                            " and ".join(missing),
                            self.settings.query_limit_s,
                        )
                self.check_once()
            except OperationalError as exc:
                log.warning("reader guard: database unreachable, will retry: %s", exc.orig)


def start_reader_query_guard(database_url: str, stop: threading.Event) -> ReaderQueryGuard:
    """The guard on a connection of its own: a busy API pool must not delay a cancellation."""
    engine = create_database_engine(database_url, pool_size=1)
    return ReaderQueryGuard(engine, stop, ReaderSettings()).start()
