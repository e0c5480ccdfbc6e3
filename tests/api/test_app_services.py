"""The app's collaborators are one typed `AppServices`, and its engine lives as long as its lifespan."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from api.app_services import AppServices, services_of
from api.settings import ApiSettings
from domain.errors import ConfigurationError


def test_what_create_app_is_given_is_what_the_routes_read(settings: ApiSettings, engine: Engine) -> None:
    def redecode(engine: Engine, device_id: int, since: object) -> None:
        pass

    app = create_app(settings, engine=engine, redecode=redecode)
    services = services_of(app)
    assert services.settings is settings
    assert services.engine is engine
    assert services.redecode is redecode
    assert services.on_device_registered is None


def test_an_engine_made_in_the_lifespan_is_gone_after_it(settings: ApiSettings) -> None:
    app = create_app(settings)
    services = services_of(app)
    with pytest.raises(ConfigurationError):
        _ = services.engine
    with TestClient(app) as client:
        with services.engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        assert client.get("/healthz").status_code == 200
    assert services.engine_or_none is None


def test_the_secret_box_is_built_once_per_app(settings: ApiSettings, engine: Engine) -> None:
    services = services_of(create_app(settings, engine=engine))
    assert services.secret_box is not None
    assert services.secret_box is services.secret_box


def test_an_app_not_made_by_create_app_has_no_services() -> None:
    with pytest.raises(TypeError, match="create_app"):
        services_of(FastAPI())
    assert isinstance(services_of(create_app(ApiSettings())), AppServices)
