"""FastAPI dependencies as `Annotated` aliases, so route signatures read as what they receive.

    def list_devices(session: SessionDep, municipality: MunicipalityDep) -> ...

`MunicipalityDep` and its siblings resolve the `{slug}` path parameter and check
in one step that the caller's key may do that kind of thing there (`api.access`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from api.access import Action, is_region_admin, require, require_in, require_in_or_shared
from api.app_services import AppServices, services_of
from api.settings import ApiSettings
from domain.errors import StorageUnavailable
from domain.municipality import Municipality
from storage.api_keys import InvalidApiKey, authenticate, authenticate_in
from storage.models import ApiKey
from storage.models import Municipality as MunicipalityRow
from storage.municipalities import SLUG_PATTERN, get_municipality
from storage.sharing import SharedUseCase, is_shared
from storage.tenancy import act_as_tenant

bearer_scheme = HTTPBearer(auto_error=False, description="`Authorization: Bearer lk_<prefix>_<secret>`")
api_key_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="`X-API-Key: lk_<prefix>_<secret>`"
)


# Dependencies that only read the app's services are `async def`: FastAPI runs a plain `def`
# dependency in its thread pool, and a hop there and back cost more than the lookup.
async def get_services(request: Request) -> AppServices:
    return services_of(request.app)


ServicesDep = Annotated[AppServices, Depends(get_services)]


async def get_engine(services: ServicesDep) -> Engine:
    return services.engine


async def get_settings(services: ServicesDep) -> ApiSettings:
    return services.settings


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]


async def get_session(engine: EngineDep) -> AsyncIterator[Session]:
    """One session per request; a lost database connection becomes `StorageUnavailable` (503).

    Opening a session touches no connection, so it happens on the event loop; closing
    may roll back on the server and goes to the thread pool. It closes as soon as the
    response is built, before it is sent (`scope="function"`): closed after sending, a
    client's next request could start before its last one gave back its connection,
    and under load the pool opened a connection per request beyond its size.
    """
    session = Session(engine, expire_on_commit=False)
    try:
        with _database_answers():
            yield session
    except PoolTimeout as exc:  # every pooled connection busy: ask the client to come back
        raise StorageUnavailable("the database is busy, retry shortly") from exc
    finally:
        await run_in_threadpool(session.close)


@contextmanager
def _database_answers() -> Iterator[None]:
    """A lost database connection becomes `StorageUnavailable` (503 with Retry-After)."""
    try:
        yield
    except OperationalError as exc:
        raise StorageUnavailable("the database cannot be reached right now") from exc


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
HeaderKeyDep = Annotated[str | None, Depends(api_key_scheme)]


def _presented(request: Request) -> str:
    presented = presented_key(request)
    if not presented:
        raise InvalidApiKey("send an API key as `Authorization: Bearer …` or `X-API-Key: …`")
    return presented


def _authenticated(request: Request, session: Session, bearer: BearerDep, header_key: HeaderKeyDep) -> ApiKey:
    """The caller's key, checked against the database once per request (kept on `request.state`).

    Called from the dependencies that run in the thread pool anyway (a municipality's,
    the key's own), so that checking the key costs no hop of its own.
    """
    known: ApiKey | None = getattr(request.state, "api_key", None)
    if known is not None:
        return known
    with _database_answers():
        key = authenticate(session, _presented(request))
    request.state.api_key = key
    return key


def _authenticated_in(
    slug: str, request: Request, session: Session, bearer: BearerDep, header_key: HeaderKeyDep
) -> tuple[ApiKey, MunicipalityRow]:
    """The caller's key and the municipality of `slug`, read together on a request's first check."""
    known: ApiKey | None = getattr(request.state, "api_key", None)
    if known is not None:
        return known, get_municipality(session, slug)
    with _database_answers():
        key, municipality = authenticate_in(session, _presented(request), slug)
    request.state.api_key = key
    return key, municipality


def presented_key(request: Request) -> str | None:
    """The key as the security schemes read it: `Authorization: Bearer …`, else `X-API-Key`.

    An Authorization header that is not a bearer credential is refused, not passed over
    for `X-API-Key`: a request whose credentials contradict each other is not guessed at.
    """
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise InvalidApiKey("the Authorization header must read `Bearer <key>`")
        return credentials.strip()
    return request.headers.get("x-api-key") or None


async def check_key_before_body(request: Request) -> None:
    """The key of a request whose body is still unread (`api.admission`), kept on `request.state`.

    A session of its own, closed before the body is read: the request's session is made
    by the dependencies, which FastAPI resolves only after reading the body.
    """
    presented = presented_key(request)
    if presented is None:
        raise InvalidApiKey("send an API key as `Authorization: Bearer …` or `X-API-Key: …`")
    engine = services_of(request.app).engine

    def check() -> ApiKey:
        with Session(engine, expire_on_commit=False) as session, _database_answers():
            try:
                return authenticate(session, presented)
            except PoolTimeout as exc:
                raise StorageUnavailable("the database is busy, retry shortly") from exc

    request.state.api_key = await run_in_threadpool(check)


def get_current_key(
    request: Request, session: SessionDep, bearer: BearerDep, header_key: HeaderKeyDep
) -> ApiKey:
    return _authenticated(request, session, bearer, header_key)


CurrentKey = Annotated[ApiKey, Depends(get_current_key)]
SlugPath = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=63, examples=["wendlingen"])]
MunicipalityResolver = Callable[[str, Request, Session, BearerDep, HeaderKeyDep], Municipality]
MunicipalityRowResolver = Callable[[str, Request, Session, BearerDep, HeaderKeyDep], MunicipalityRow]


def municipality_value(row: MunicipalityRow) -> Municipality:
    """The value a route is handed: its attributes read once, so no route touches the ORM row."""
    return Municipality(
        id=row.id, slug=row.slug, name=row.name, district=row.district, created_at=row.created_at
    )


def _reader_municipality(key: ApiKey, requested: MunicipalityRow) -> int:
    """Whose rows the rest of the request may touch, enforced by the database from here on.

    The key's own municipality: reading another municipality's shared use case, the
    database's sharing policies let exactly that through. A region admin's key belongs
    to no municipality and acts for the one it asked for.
    """
    if is_region_admin(key) or key.municipality_id is None:
        return requested.id
    return key.municipality_id


def municipality_row_for(action: Action) -> MunicipalityRowResolver:
    """`municipality_for`, handing over the ORM row: for routes that pass it to storage as the owner."""

    def municipality(
        slug: SlugPath, request: Request, session: SessionDep, bearer: BearerDep, header_key: HeaderKeyDep
    ) -> MunicipalityRow:
        key, found = _authenticated_in(slug, request, session, bearer, header_key)
        require_in(key, found, action)
        act_as_tenant(session, _reader_municipality(key, found))
        return found

    return municipality


def municipality_for(action: Action) -> MunicipalityResolver:
    """A dependency resolving `{slug}` to a municipality the key may do `action` in."""
    row_for = municipality_row_for(action)

    def municipality(
        slug: SlugPath, request: Request, session: SessionDep, bearer: BearerDep, header_key: HeaderKeyDep
    ) -> Municipality:
        return municipality_value(row_for(slug, request, session, bearer, header_key))

    return municipality


def municipality_for_use_case(action: Action, use_case: SharedUseCase) -> MunicipalityResolver:
    """`municipality_for`, for the routes of one use case: another municipality's data may be
    read where it shares `use_case` with the key's municipality or with the region."""

    def municipality(
        slug: SlugPath, request: Request, session: SessionDep, bearer: BearerDep, header_key: HeaderKeyDep
    ) -> Municipality:
        key, found = _authenticated_in(slug, request, session, bearer, header_key)

        def shared_with(reader_id: int) -> bool:
            return is_shared(session, owner_id=found.id, use_case=use_case.value, reader_id=reader_id)

        require_in_or_shared(key, found, action, shared_with)
        act_as_tenant(session, _reader_municipality(key, found))
        return municipality_value(found)

    return municipality


def key_allowed(action: Action) -> Callable[[ApiKey], Awaitable[ApiKey]]:
    """A dependency for routes outside a municipality (e.g. creating one)."""

    async def allowed(key: CurrentKey) -> ApiKey:
        require(key, action)
        return key

    return allowed


MunicipalityDep = Annotated[Municipality, Depends(municipality_for(Action.READ))]
DeviceEditorDep = Annotated[Municipality, Depends(municipality_for(Action.EDIT_DEVICES))]
GatewayEditorDep = Annotated[Municipality, Depends(municipality_for(Action.EDIT_GATEWAYS))]
KeyAdminDep = Annotated[Municipality, Depends(municipality_for(Action.MANAGE_KEYS))]
RedecodeAdminDep = Annotated[Municipality, Depends(municipality_for(Action.REDECODE))]
ShareAdminDep = Annotated[MunicipalityRow, Depends(municipality_row_for(Action.SHARE))]
"""The ORM row: sharing and ingest grants hand it to storage as the granting owner."""
ParkingReaderDep = Annotated[
    Municipality, Depends(municipality_for_use_case(Action.READ, SharedUseCase.PARKING))
]
WasteReaderDep = Annotated[Municipality, Depends(municipality_for_use_case(Action.READ, SharedUseCase.WASTE))]
SoilReaderDep = Annotated[Municipality, Depends(municipality_for_use_case(Action.READ, SharedUseCase.SOIL))]
EnvironmentReaderDep = Annotated[
    Municipality, Depends(municipality_for_use_case(Action.READ, SharedUseCase.ENVIRONMENT))
]
RegionAdminKey = Annotated[ApiKey, Depends(key_allowed(Action.MANAGE_MUNICIPALITIES))]
