"""The one place that confines a Session to one municipality's rows, in the database itself.

Migration 0009 keeps every municipality's rows to it with row-level security: the
role `lorakom_tenant` sees the rows of the municipality named by the transaction-local
setting `lorakom.municipality_id` (and what other municipalities shared with it), and
reads the time series through the filtered views of `lorakom_scoped`. A Session given a
municipality here switches into that role at the start of every transaction, so that a
query which forgets its `WHERE municipality_id` still cannot cross towns, and a commit
in the middle of a request does not drop the confinement.

All three settings are transaction-local (`set_config(..., true)`): they end with the
transaction, so a pooled connection never carries one request's municipality into the
next. A Session that is not given a municipality runs as the app's own login, as the
bridge, the jobs and the region-wide views need.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.orm import Session, SessionTransaction

TENANT_ROLE: Final = "lorakom_tenant"
READER_ROLE: Final = "lorakom_reader"
SCOPED_SCHEMA: Final = "lorakom_scoped"
MUNICIPALITY_SETTING: Final = "lorakom.municipality_id"

_INFO_KEY: Final = "lorakom.tenant"
_ENTERED_KEY: Final = "lorakom.tenant.transaction"

_OUTER_SEARCH_PATH: Final = "lorakom.outer_search_path"

ENTER_TENANT: Final = text(
    f"SELECT set_config('role', '{TENANT_ROLE}', true), "
    f"set_config('{MUNICIPALITY_SETTING}', :municipality_id, true), "
    f"set_config('{_OUTER_SEARCH_PATH}', current_setting('search_path'), true), "
    f"set_config('search_path', '{SCOPED_SCHEMA}, ' || current_setting('search_path'), true)"
)
"""One statement, one round trip: the role, its municipality, and the filtered views first in
the search_path (unqualified `reading`, `uplink`, ... then name the views)."""

LEAVE_TENANT: Final = text(
    "SELECT set_config('role', 'none', true), "
    f"set_config('{MUNICIPALITY_SETTING}', '', true), "
    f"set_config('search_path', current_setting('{_OUTER_SEARCH_PATH}'), true)"
)


def act_as_tenant(session: Session, municipality_id: int) -> None:
    """Confine `session` to `municipality_id` from now on: this transaction and every later one."""
    current = session.get_transaction()
    if session.info.get(_INFO_KEY) == municipality_id and session.info.get(_ENTERED_KEY) is current:
        return  # confined already, e.g. by a second dependency of the same request
    session.info[_INFO_KEY] = municipality_id
    if current is not None:
        _enter(session.connection(), municipality_id)
        session.info[_ENTERED_KEY] = current


def act_as_platform(session: Session) -> None:
    """Lift the confinement again, for the rest of `session`: the app's own login decides.

    Only for what the region admin does as the platform's operator rather than for one
    municipality (handing a gateway from one municipality to another); the caller has
    checked that the key is the region admin's.
    """
    confined = session.info.pop(_INFO_KEY, None)
    entered = session.info.pop(_ENTERED_KEY, None)
    if confined is not None and entered is not None and entered is session.get_transaction():
        session.connection().execute(LEAVE_TENANT)


def tenant_of(session: Session) -> int | None:
    """The municipality `session` is confined to, or None when it runs as the app's login."""
    found: int | None = session.info.get(_INFO_KEY)
    return found


def tenant_session(engine: Engine, municipality_id: int, **options: Any) -> Session:
    """A new Session confined to `municipality_id`, for work that outlives the request's
    Session (a streamed export reads after the request's Session is closed)."""
    session = Session(engine, **options)
    act_as_tenant(session, municipality_id)
    return session


def _enter(connection: Connection, municipality_id: int) -> None:
    connection.execute(ENTER_TENANT, {"municipality_id": str(municipality_id)})


@event.listens_for(Session, "after_begin")
def _confine_transaction(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    municipality_id = tenant_of(session)
    if municipality_id is not None and not transaction.nested:
        _enter(connection, municipality_id)
        session.info[_ENTERED_KEY] = transaction
