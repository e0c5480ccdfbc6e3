"""The standing security suite: every door of the platform, probed as an attacker would.

It shares the API suite's fixtures (a session's app on the migrated database, tenants
made per test), so that a probe here meets exactly the app the API tests meet. The
suite's own towns (`world`) are made once per module: a probe over every route needs
many requests, not many towns.
"""

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from decoders import CodecRegistry
from tests.api.conftest import (  # noqa: F401  (fixtures, found by pytest by name)
    client,
    engine,
    hook,
    make_tenant,
    neighbour,
    region_key,
    settings,
    tenant,
)
from tests.security.world import World, make_world


@pytest.fixture(scope="session", autouse=True)
def v8_started_on_the_main_thread() -> None:
    """V8 first started off the main thread crashes when another thread then makes an isolate,
    and the app makes isolates in request threads (codec scripts); so V8 starts here first."""
    warm = CodecRegistry()
    warm.register_javascript("warm/up", "function decodeUplink(input) { return { data: {} }; }")
    warm.close()


@pytest.fixture(scope="session")
def probe(client: TestClient) -> TestClient:  # noqa: F811  (the fixture above)
    """The session's app, answering a server error as the 500 a client would get.

    The API suite's client raises the app's exception into the test instead; a probe
    over many requests must see the answer and go on, to report every failure at once.
    The app is already started by `client`, so this one is used without a lifespan.
    """
    return TestClient(client.app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def world(probe: TestClient, engine: Engine, region_key: str) -> Iterator[World]:  # noqa: F811  (above)
    made = make_world(probe, engine, region_key)
    yield made
    made.close()
