"""The API through HTTP against the session's migrated PostgreSQL.

Each test makes its own municipalities (unique slugs) and devices (random DevEUIs),
so tests never see each other's rows although they share one database; that keeps
streamed exports, which read on a connection of their own, seeing what the test wrote.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2` in its test client; the project pins httpx.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from cli.wiring import redecode_since_hook
from storage.api_keys import Role, create_api_key
from storage.database import DatabaseSettings, create_database_engine
from storage.municipalities import create_municipality
from storage.secret_box import SecretSettings, new_key
from tests.api.data import MUNICIPAL_ROLES, RegisteredHooks, Tenant, TenantFactory, unique_slug


@pytest.fixture(scope="session")
def engine(migrated_db_url: str) -> Iterator[Engine]:
    engine = create_database_engine(migrated_db_url, pool_size=4)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def settings(migrated_db_url: str) -> ApiSettings:
    # A tiny export page makes every export test cross several pages. One key for the
    # session: deliveries run over every stored subscription, whichever test made it.
    return ApiSettings(
        database=DatabaseSettings(url=SecretStr(migrated_db_url)),
        export_page_rows=7,
        secrets=SecretSettings(keys=SecretStr(new_key())),
    )


real_redecode = redecode_since_hook()
"""The composition root's redecode: the live decoders (and stored JS codecs) over stored frames."""


@pytest.fixture(scope="session")
def hook() -> RegisteredHooks:
    return RegisteredHooks()


@pytest.fixture(scope="session")
def client(settings: ApiSettings, engine: Engine, hook: RegisteredHooks) -> Iterator[TestClient]:
    app = create_app(settings, engine=engine, on_device_registered=hook, redecode=real_redecode)
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="session")
def region_key(engine: Engine) -> str:
    with Session(engine) as session:
        text, _ = create_api_key(session, municipality_slug=None, role=Role.REGION_ADMIN, name="region")
        session.commit()
    return text


@pytest.fixture
def make_tenant(engine: Engine) -> TenantFactory:
    def make() -> Tenant:
        slug = unique_slug()
        with Session(engine) as session:
            municipality = create_municipality(
                session, slug=slug, name=f"Gemeinde {slug}", district="Esslingen"
            )
            keys = {
                role: create_api_key(session, municipality_slug=slug, role=role, name=role)[0]
                for role in MUNICIPAL_ROLES
            }
            session.commit()
            return Tenant(id=municipality.id, slug=slug, keys=keys)

    return make


@pytest.fixture
def tenant(make_tenant: TenantFactory) -> Tenant:
    return make_tenant()


@pytest.fixture
def neighbour(make_tenant: TenantFactory) -> Tenant:
    """Another municipality: nothing of it may ever show through `tenant`'s keys."""
    return make_tenant()
