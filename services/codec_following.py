"""Codec-script following: a process's `CodecRegistry` kept in step with the registered JS codecs.

Every process that decodes (the bridge, the webhook receiver, the API, a redecode)
holds its own registry; a follower asks `storage.codec_scripts.load_changed` for the
rows changed since its last look and registers or unregisters them.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from decoders import CodecRegistry
from domain.errors import DecodeError
from storage.codec_scripts import StoredScript, load_changed

log = logging.getLogger(__name__)


class ScriptFollower:
    """Keeps one registry's JS codecs in step with the table; a refresh with no change is one
    indexed query, so callers may refresh often (the API does before every script use).

    A stored script that no longer loads (it passed validation when registered, but e.g. the
    sandbox's limits changed) is unregistered rather than left at an older version, and its
    error is kept in `failures` so that callers can say why the codec is missing.
    """

    def __init__(self, registry: CodecRegistry) -> None:
        self.registry = registry
        self.failures: dict[str, str] = {}
        self._loaded: set[str] = set()
        self._since: datetime | None = None
        self._lock = threading.Lock()

    def refresh(self, conn: psycopg.Connection[Any] | Session | Connection) -> list[StoredScript]:
        """Apply every change since the last refresh; return the changed scripts."""
        with self._lock:
            changed = load_changed(conn, self._since)
            for stored in changed:
                self._apply(stored)
            if changed:
                self._since = changed[-1].updated_at
            return changed

    def forget(self) -> None:
        """Unregister every script this follower registered (freeing their isolates), so that
        a registry outliving its app holds none; the next refresh loads them all again."""
        with self._lock:
            for codec_id in sorted(self._loaded):
                self.registry.unregister_javascript(codec_id)
            self._loaded.clear()
            self.failures.clear()
            self._since = None

    def _apply(self, stored: StoredScript) -> None:
        self.failures.pop(stored.codec_id, None)
        self._loaded.discard(stored.codec_id)
        if stored.deleted:
            self.registry.unregister_javascript(stored.codec_id)
            return
        try:
            self.registry.register_javascript(
                stored.codec_id,
                stored.script,
                style=stored.style,
                devices=stored.devices,
                use_case=stored.use_case,
            )
            self._loaded.add(stored.codec_id)
        except DecodeError as exc:
            self.registry.unregister_javascript(stored.codec_id)
            self.failures[stored.codec_id] = str(exc)
            log.error("codec script %s does not load: %s", stored.codec_id, exc)


class FollowingDecoder:
    """The live decoding rules over stored frames, with the JS codecs registered in the database.

    `refresh()` picks up scripts added or changed since the last call (one indexed query).
    """

    def __init__(self) -> None:
        self.registry = CodecRegistry()
        self.follower = ScriptFollower(self.registry)

    def refresh(self, engine: Engine) -> None:
        with engine.connect() as conn:
            self.follower.refresh(conn)
