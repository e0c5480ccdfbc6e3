"""How the API is served; where the data lives comes from `storage.database.DatabaseSettings`."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.webhook_targets import WebhookSettings
from storage.database import DatabaseSettings
from storage.secret_box import SecretSettings


class ApiSettings(BaseSettings):
    """`LORAKOM_API_…` variables; the composition root builds this, never an import."""

    model_config = SettingsConfigDict(env_prefix="LORAKOM_API_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = 8000
    root_path: str = ""
    cors_origins: list[str] = Field(default_factory=list)
    """Origins allowed to call the API from a browser, e.g. a municipality's dashboard host."""
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    """Largest request body of a JSON route; refused with 413 before it is read (`api.admission`)."""
    max_import_bytes: int = 20 * 1024 * 1024
    """Largest CSV accepted by the device import (20 MiB is some 100,000 rows)."""
    max_ingest_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest body of the routes the composition root adds (network servers' webhooks)."""
    metrics_token: SecretStr | None = None
    """Bearer token that `/metrics` asks for; without one `/metrics` is off (404), since its
    series name the network sources of every municipality."""
    codec_try_burst: int = Field(default=10, ge=1)
    """Calls of a codec script's `/test` one API key may make at once (`api.rate_limits`)."""
    codec_try_per_minute: float = Field(default=30.0, gt=0)
    """How fast a key's allowance for `/test` refills: trying a script runs it on the platform's CPU."""
    export_page_rows: int = 5000
    """Rows fetched per query while streaming an export: bounds memory, not the export's size."""
    max_history_points: int = Field(default=2_000_000, gt=0)
    """Most points (buckets × series, gaps included) one bucketed history request may ask for:
    a year of hourly values of some 200 series. Gaps cost as much to send as values, so without
    it one request for one-second buckets over two centuries streamed for as long as it was read."""
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    """Where outgoing alert webhooks may go (`LORAKOM_WEBHOOK_…`)."""
    secrets: SecretSettings = Field(default_factory=SecretSettings)
    """The keys that encrypt stored secrets (`LORAKOM_SECRET_KEYS`)."""
