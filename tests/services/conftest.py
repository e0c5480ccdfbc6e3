"""A database of the services tests' own: delivery runs claim every due delivery in a database."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from domain.device_fields import DeviceSpec
from domain.ids import DevEui
from storage.database import create_database_engine
from storage.devices import create_device
from storage.municipalities import create_municipality
from storage.schema import upgrade_database
from tests.conftest import create_database, drop_database


@pytest.fixture(scope="module")
def services_engine(postgres_server: str) -> Iterator[Engine]:
    url = create_database(postgres_server, prefix="lorakom_services")
    upgrade_database(url)
    engine = create_database_engine(url, pool_size=3)
    try:
        yield engine
    finally:
        engine.dispose()
        drop_database(postgres_server, url)


def new_town(engine: Engine) -> int:
    slug = f"ort-{secrets.token_hex(4)}"
    with Session(engine) as session:
        town = create_municipality(session, slug=slug, name=slug.title(), district=None)
        session.commit()
        return town.id


def new_device(engine: Engine, municipality_id: int, **fields: Any) -> tuple[int, DevEui]:
    spec = DeviceSpec.model_validate({"dev_eui": secrets.token_hex(8), "name": "Sensor"} | fields)
    with Session(engine) as session:
        device = create_device(session, municipality_id=municipality_id, spec=spec)
        session.commit()
        return device.id, DevEui(device.dev_eui)
