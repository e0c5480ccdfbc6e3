"""Soil thresholds as stored: the traffic-light limits a municipality entered per soil type.

The defaults they override, and the lights and forecasts built on them, are `services.soil`.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from domain.errors import NotFound
from storage.models_usecases import SoilThreshold


def entered_thresholds(session: Session, municipality_id: int) -> list[SoilThreshold]:
    """The municipality's own entries, each overriding or extending the defaults."""
    return list(
        session.scalars(select(SoilThreshold).where(SoilThreshold.municipality_id == municipality_id))
    )


def set_thresholds(
    session: Session,
    municipality_id: int,
    soil_type: str,
    *,
    yellow_below_percent: float,
    red_below_percent: float,
) -> None:
    statement = insert(SoilThreshold).values(
        municipality_id=municipality_id,
        soil_type=soil_type,
        yellow_below_percent=yellow_below_percent,
        red_below_percent=red_below_percent,
    )
    session.execute(
        statement.on_conflict_do_update(
            constraint="uq_soil_threshold_municipality_id",
            set_={
                "yellow_below_percent": statement.excluded.yellow_below_percent,
                "red_below_percent": statement.excluded.red_below_percent,
                "updated_at": statement.excluded.updated_at,
            },
        )
    )


def remove_thresholds(session: Session, municipality_id: int, soil_type: str) -> None:
    """Back to the default for this soil type; a type with no entry of this municipality is not found."""
    removed = session.execute(
        delete(SoilThreshold)
        .where(SoilThreshold.municipality_id == municipality_id, SoilThreshold.soil_type == soil_type)
        .returning(SoilThreshold.id)
    ).first()
    if removed is None:
        raise NotFound(f"no thresholds entered for soil type {soil_type!r}")
