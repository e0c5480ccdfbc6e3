"""Where Grafana is, how to sign in to it, and the fixed names lorakom's objects carry in it."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DATASOURCE_UID = "lorakom-postgres"
"""Every dashboard in dashboards/ names its data source by this uid; uids are unique per organisation."""
DATASOURCE_NAME = "lorakom"
DATASOURCE_TYPE = "grafana-postgresql-datasource"
FOLDER_UID = "lorakom"
FOLDER_TITLE = "lorakom"
HOME_DASHBOARD_UID = "lorakom-overview"
CHANGE_MESSAGE = "lorakom grafana provision"


class GrafanaSettings(BaseSettings):
    """Where Grafana is, how to sign in to it, and how Grafana reaches the database."""

    model_config = SettingsConfigDict(env_prefix="LORAKOM_GRAFANA_", extra="forbid")

    url: str = "http://127.0.0.1:3000"
    admin_user: str = "admin"
    admin_password: SecretStr | None = None
    database_host: str | None = None
    """`host:port` of PostgreSQL as Grafana reaches it; default: the host of LORAKOM_DB_URL."""
    database_name: str | None = None
    """Default: the database of LORAKOM_DB_URL."""
    sslmode: str = "disable"
    timescaledb: bool = True
    region_org_name: str = "Region"
    timeout_s: float = 30.0
