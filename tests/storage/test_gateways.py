"""Gateways as storage hands them out: values that outlive their session, with their owner's slug."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from domain.errors import NotFound
from domain.gateway import Gateway as GatewayValue
from storage.database import create_database_engine
from storage.gateways import edit_gateway, get_gateway, list_gateways
from storage.models import Gateway
from storage.municipalities import create_municipality


def test_a_gateway_is_a_value_with_its_owner_and_edits_return_the_new_value(migrated_db_url: str) -> None:
    engine = create_database_engine(migrated_db_url)
    slug = f"gw-town-{uuid.uuid4().hex[:8]}"
    gateway_id = f"gw-{uuid.uuid4().hex[:12]}"
    seen = datetime(2026, 11, 1, tzinfo=UTC)
    try:
        with Session(engine) as session:
            town = create_municipality(session, slug=slug, name="Gateway town", district=None)
            session.add(Gateway(gateway_id=gateway_id, municipality_id=town.id, first_seen_at=seen))
            session.commit()
            town_id = town.id
        with Session(engine) as session:
            found = get_gateway(session, municipality_id=town_id, gateway_id=gateway_id)
            listed = list_gateways(session, municipality_id=town_id, after_id=None, limit=10)
        # Read after the session has closed: a value, not a row waiting for its session.
        assert isinstance(found, GatewayValue)
        assert (found.gateway_id, found.owner_slug, found.first_seen_at) == (gateway_id, slug, seen)
        assert [gateway.gateway_id for gateway in listed] == [gateway_id]
        with Session(engine) as session:
            edited = edit_gateway(
                session, gateway_id, {"name": "Rathaus Dach", "municipality_id": None}, owner_slug=None
            )
            session.commit()
        assert (edited.name, edited.municipality_id, edited.owner_slug) == ("Rathaus Dach", None, None)
        with Session(engine) as session:
            again = get_gateway(session, municipality_id=None, gateway_id=gateway_id)
            with pytest.raises(ValueError, match="not editable: online"):
                edit_gateway(session, gateway_id, {"online": True}, owner_slug=None)
            with pytest.raises(NotFound):
                edit_gateway(session, "gw-nowhere", {"name": "x"}, owner_slug=None)
        assert (again.name, again.owner_slug) == ("Rathaus Dach", None)
    finally:
        engine.dispose()
