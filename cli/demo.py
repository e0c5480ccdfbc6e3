"""`lorakom demo`: the whole platform on one machine, with simulated sensors of three towns.

Everything a production deployment has is here, only smaller: a PostgreSQL
server (embedded unless LORAKOM_DB_URL names one), a real MQTT broker (the local
one, or an embedded one), six network-server sources (each town's TTS and
ChirpStack application trees), the bridge, and the API. The simulator publishes
in the vendors' real payload formats; devices report every few seconds instead
of every few minutes so that data visibly flows at once.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import uvicorn
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cli.simulator.envelopes import EnvelopeWriter
from cli.simulator.fleet import Fleet, SimulatedDevice
from domain.uplink import NetworkServer
from ingest.config import SourceConfig
from storage.models import Device, Gateway, Municipality

log = logging.getLogger(__name__)

DEMO_SPEED = 120.0  # a device with a 10-minute interval reports every 5 seconds
_METADATA_NAMES = {"zone": "parking_zone", "spot_id": "parking_spot"}


def device_metadata(device: SimulatedDevice) -> dict[str, Any]:
    """The simulator's installation notes in the registry's vocabulary."""
    return {_METADATA_NAMES.get(key, key): value for key, value in device.metadata.items()}


def register_fleet(engine: Engine, fleet: Fleet) -> dict[str, int]:
    """Register the demo's towns, gateways and (most of the) devices; idempotent for a second demo."""
    with Session(engine) as session:
        ids: dict[str, int] = {}
        for town in fleet.towns:
            municipality = session.scalar(select(Municipality).where(Municipality.slug == town.slug))
            if municipality is None:
                municipality = Municipality(
                    slug=town.slug,
                    name=town.name,
                    district="Kreis Paderborn" if town.slug != "lippstadt" else "Kreis Soest",
                )
                session.add(municipality)
                session.flush()
            ids[town.slug] = municipality.id
        known = set(session.scalars(select(Device.dev_eui)))
        for device in fleet.devices:
            if not device.registered or device.dev_eui in known:
                continue
            session.add(
                Device(
                    municipality_id=ids[device.municipality],
                    dev_eui=device.dev_eui,
                    name=device.name,
                    codec_id=device.codec_id,
                    use_case=str(device.use_case),
                    latitude=device.latitude,
                    longitude=device.longitude,
                    tags=[str(device.network_server)],
                    metadata_=device_metadata(device),
                )
            )
        for gateway in fleet.gateways:
            existing = session.get(Gateway, gateway.gateway_eui)
            if existing is None:
                existing = Gateway(gateway_id=gateway.gateway_eui)
                session.add(existing)
            existing.name = existing.name or gateway.name
            existing.municipality_id = existing.municipality_id or ids[gateway.municipality]
            existing.latitude = existing.latitude or gateway.latitude
            existing.longitude = existing.longitude or gateway.longitude
        session.commit()
        return ids


def demo_sources(fleet: Fleet, host: str, port: int) -> list[SourceConfig]:
    """One source per town and network server, subscribed to exactly that town's applications."""
    sources: list[SourceConfig] = []
    for town in fleet.towns:
        for server in (NetworkServer.TTS, NetworkServer.CHIRPSTACK_V4):
            devices = [d for d in fleet.devices if d.municipality == town.slug and d.network_server is server]
            if server is NetworkServer.TTS:
                topics = sorted({EnvelopeWriter.tts_topic(d).rsplit("/", 2)[0] + "/+/up" for d in devices})
            else:
                topics = sorted({f"application/{d.application_id}/device/+/event/+" for d in devices})
                # Each town's source reports its own gateways: a status of another town's
                # gateway is not a source's to give (see `storage.uplinks`).
                topics += [
                    f"gateway/{gateway.gateway_eui}/{suffix}"
                    for gateway in fleet.gateways
                    if gateway.municipality == town.slug and gateway.network_server is server
                    for suffix in ("event/stats", "state/conn")
                ]
            if not topics:
                continue
            sources.append(
                SourceConfig(
                    name=f"{town.slug}-{'tts' if server is NetworkServer.TTS else 'chirpstack'}",
                    kind=server,
                    municipality=town.slug,
                    municipality_name=town.name,
                    host=host,
                    port=port,
                    tls=False,
                    qos=1,  # the demo's broker is Mosquitto, not TTS: QoS 1 works there
                    mqtt_version="5",
                    topic=topics,
                )
            )
    return sources


class ApiServer:
    """uvicorn in a thread, so that the demo and `lorakom run` stop it with the bridge."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="lorakom-api", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
