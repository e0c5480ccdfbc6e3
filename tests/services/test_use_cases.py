"""The use cases' analytics over stored readings, without the API: bins, soil, parking, device health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from domain.errors import NotFound
from services.health import DEFAULT_DEVICE_INTERVAL, device_health, device_interval
from services.parking import spot_states, zone_summaries
from services.soil import DEFAULT_SOIL, Light, areas, needs_water, soil_sensors, thresholds
from services.waste import FILL_LEVEL, bin_statuses, collection_list, emptying_history
from storage.models import Device
from storage.parking import parking_devices, set_capacity
from storage.soil import set_thresholds
from tests.api.data import add_readings
from tests.services.conftest import new_device, new_town

NOW = datetime.now(UTC).replace(microsecond=0)


def test_a_filling_bin_is_forecast_and_its_emptying_found(services_engine: Engine) -> None:
    town = new_town(services_engine)
    bin_id, _ = new_device(services_engine, town, name="Bin")
    hours = range(48, -1, -6)
    fills = [80.0, 90.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0]
    add_readings(
        services_engine,
        [(NOW - timedelta(hours=h), bin_id, FILL_LEVEL, fill) for h, fill in zip(hours, fills, strict=True)],
    )
    with Session(services_engine) as session:
        (status,) = bin_statuses(session, town, now=NOW, full_percent=100.0, after_device_id=None, limit=10)
        assert status.fill_percent == 35.0
        assert status.rate_percent_per_day == pytest.approx(20.0, rel=0.05)
        assert status.full_at is not None
        assert NOW + timedelta(days=3) < status.full_at < NOW + timedelta(days=4)
        assert status.last_emptied_at == NOW - timedelta(hours=36)
        assert collection_list(session, town, now=NOW, within=timedelta(days=1), full_percent=100.0) == []
        due = collection_list(session, town, now=NOW, within=timedelta(days=5), full_percent=100.0)
        assert [found.device.id for found in due] == [bin_id]
        device = session.get_one(Device, bin_id)
        (emptied,) = emptying_history(session, device, start=NOW - timedelta(days=3), end=NOW)
        assert emptied.time == NOW - timedelta(hours=36)
        assert emptied.before_percent == 90.0


def test_soil_lights_follow_the_towns_thresholds(services_engine: Engine) -> None:
    town = new_town(services_engine)
    dry, _ = new_device(services_engine, town, name="Linde", tags=["Park"], metadata={"soil_type": "sand"})
    wet, _ = new_device(services_engine, town, name="Eiche", tags=["Park"])
    add_readings(
        services_engine,
        [
            (NOW - timedelta(hours=1), dry, "soil_moisture", 9.0),
            (NOW - timedelta(hours=1), wet, "soil_moisture", 30.0),
        ],
    )
    with Session(services_engine) as session:
        assert thresholds(session, town)["sand"].entered is False
        sensors = soil_sensors(session, town, now=NOW, after_device_id=None, limit=None)
        assert [sensor.light for sensor in sensors] == [Light.YELLOW, Light.GREEN]
        set_thresholds(session, town, "sand", yellow_below_percent=14.0, red_below_percent=10.0)
        assert thresholds(session, town)["sand"].entered is True
        assert thresholds(session, town)[DEFAULT_SOIL].entered is False
        sensors = soil_sensors(session, town, now=NOW, after_device_id=None, limit=None)
        assert [sensor.light for sensor in sensors] == [Light.RED, Light.GREEN]
        assert [sensor.device.id for sensor in needs_water(sensors, within_days=3)] == [dry]
        (park,) = areas(sensors)
        assert (park.name, park.sensors, park.light, park.lowest_moisture_percent) == (
            "Park",
            2,
            Light.RED,
            9.0,
        )
        session.rollback()


def test_a_parking_spot_counts_once_its_state_has_held(services_engine: Engine) -> None:
    town = new_town(services_engine)
    settled, _ = new_device(services_engine, town, metadata={"parking_zone": "Markt", "parking_spot": "1"})
    flicker, _ = new_device(services_engine, town, metadata={"parking_zone": "Markt", "parking_spot": "2"})
    new_device(services_engine, town, metadata={"parking_zone": "Markt", "parking_spot": "3"})
    add_readings(
        services_engine,
        [
            (NOW - timedelta(hours=2), settled, "occupied", 1.0),
            (NOW - timedelta(hours=2), flicker, "occupied", 0.0),
            (NOW - timedelta(seconds=30), flicker, "occupied", 1.0),
        ],
    )
    hold = timedelta(minutes=2)
    with Session(services_engine) as session:
        devices = parking_devices(session, town, "Markt")
        states = {state.spot: state.occupied for state in spot_states(session, devices, now=NOW, hold=hold)}
        assert states == {"1": True, "2": False, "3": None}
        (zone,) = zone_summaries(session, town, now=NOW, hold=hold)
        assert (zone.name, zone.capacity, zone.sensors, zone.occupied, zone.free, zone.unknown) == (
            "Markt",
            3,
            3,
            1,
            1,
            1,
        )
        set_capacity(session, town, "Markt", 10)
        (zone,) = zone_summaries(session, town, now=NOW, hold=hold, zone="Markt")
        assert (zone.capacity, zone.capacity_entered, zone.free) == (10, True, 8)
        with pytest.raises(NotFound):
            zone_summaries(session, town, now=NOW, hold=hold, zone="Bahnhof")
        session.rollback()


def test_a_device_interval_is_registered_or_seen_or_an_hour(services_engine: Engine) -> None:
    town = new_town(services_engine)
    registered, _ = new_device(services_engine, town, metadata={"expected_interval_s": 600})
    unregistered, _ = new_device(services_engine, town)
    with Session(services_engine) as session:
        with_interval = session.get_one(Device, registered)
        without = session.get_one(Device, unregistered)
        assert device_interval(with_interval, [0.0, 100.0]) == (600.0, True)
        assert device_interval(without, [0.0, 300.0, 600.0, 1000.0]) == (300.0, False)
        assert device_interval(without, [0.0]) == (DEFAULT_DEVICE_INTERVAL.total_seconds(), False)
        (health,) = device_health(session, [without], now=NOW, loss_window=timedelta(days=1))
        assert health.silent
        assert health.activity is None
        assert health.battery is None
