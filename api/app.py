"""The app factory: the API's composition, with nothing built at import time.

`create_app(settings)` is called by the CLI's `lorakom run` (with the ingest webhook
router in `extra_routers`, since the API itself never imports ingest) and by tests.
The engine is made in the lifespan unless one is handed in, so that a composition
root which already has an engine (the embedded server, the demo) shares its pool.
What the routes run on is one typed `AppServices` (`api.app_services`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from api.admission import Admission, BodyLimits
from api.app_services import AppServices, DeviceRegisteredHook, RedecodeHook, services_of
from api.deps import bearer_scheme, check_key_before_body
from api.metrics import RequestTimer
from api.problems import PROBLEM_MEDIA_TYPE, FieldProblem, Problem, RequestId, install_problem_handlers
from api.query import refuse_misspelt_query
from api.routers import (
    alerts,
    api_keys,
    devices,
    environment,
    gateways,
    health,
    ingest_grants,
    municipalities,
    network_health,
    parking,
    readings,
    region,
    sharing,
    soil,
    waste,
)
from api.routers import codecs as codecs_router
from api.settings import ApiSettings
from decoders import CodecRegistry
from domain.errors import ConfigurationError
from storage.buckets import AggregateSource, BucketExpression, date_bin_bucket
from storage.codec_scripts import MAX_SCRIPT_BYTES
from storage.database import create_database_engine

DESCRIPTION = """\
LoRaWAN sensor data of the association's municipalities: devices, gateways and readings.

Authenticate with an API key, `Authorization: Bearer lk_…` or `X-API-Key: lk_…`.
Every key except a region admin's sees its own municipality only; another
municipality's resources answer 404. Errors are RFC 9457 `application/problem+json`.
Lists are paged with an opaque `cursor`; pass a page's `next_cursor` to get the next one.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    services = services_of(app)
    owned: Engine | None = None
    if services.engine_or_none is None:
        database = services.settings.database
        if database.url is None:
            raise ConfigurationError("the API needs LORAKOM_DB_URL (or an engine from its composition root)")
        owned = create_database_engine(database.url.get_secret_value(), pool_size=database.pool_size)
        services.engine_or_none = owned
    await codecs_router.load_codec_scripts(app)
    try:
        yield
    finally:
        codecs_router.unload_codec_scripts(app)
        if owned is not None:
            owned.dispose()
            services.engine_or_none = None


def create_app(
    settings: ApiSettings,
    *,
    engine: Engine | None = None,
    extra_routers: Sequence[APIRouter] = (),
    bucket_expression: BucketExpression = date_bin_bucket,
    aggregate_source: AggregateSource | None = None,
    on_device_registered: DeviceRegisteredHook | None = None,
    redecode: RedecodeHook | None = None,
    codecs: CodecRegistry | None = None,
) -> FastAPI:
    """Build the API.

    `bucket_expression` swaps the SQL that puts readings into time buckets (TimescaleDB's
    `time_bucket` where installed), and `aggregate_source` serves the widths it knows from
    precomputed buckets (TimescaleDB's continuous aggregates for hours and days).
    `on_device_registered(engine, device_id)` runs in a background task after a device with
    stored history is registered (decode that history).
    `redecode(engine, device_id, since)` serves the admin action that decodes a device's
    stored frames again. All of them live on the app's `AppServices` (`services_of(app)`)
    and may be replaced there after the app is built.
    """
    app = FastAPI(
        title="lorakom API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        root_path=settings.root_path,
        dependencies=[Depends(refuse_misspelt_query)],
    )
    app.state.services = AppServices(
        settings=settings,
        codecs=codecs or CodecRegistry(),
        engine_or_none=engine,
        bucket_expression=bucket_expression,
        aggregate_source=aggregate_source,
        on_device_registered=on_device_registered,
        redecode=redecode,
    )

    install_problem_handlers(app)
    # Added innermost first: the correlation id wraps everything, CORS headers reach even
    # the refusals of `Admission`, which stands right in front of the routes.
    app.add_middleware(
        Admission,
        limits=body_limits(settings, extra_routers),
        check_key=check_key_before_body,
        key_scheme=bearer_scheme,
    )
    app.add_middleware(RequestTimer)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(RequestId)

    app.include_router(health.router)
    v1 = APIRouter(prefix="/v1")
    for router in (
        municipalities.router,
        api_keys.router,
        devices.router,
        gateways.router,
        readings.router,
        parking.router,
        waste.router,
        soil.router,
        environment.router,
        network_health.router,
        alerts.router,
        sharing.router,
        ingest_grants.router,
        region.router,
        codecs_router.router,
        *extra_routers,
    ):
        v1.include_router(router)
    app.include_router(v1)
    install_field_page(app)
    install_problem_schema(app)
    return app


MULTIPART_ENVELOPE_BYTES = 64 * 1024
"""What a form upload adds around its file: boundaries, part headers, other fields."""
SCRIPT_BODY_BYTES = 3 * MAX_SCRIPT_BYTES + 64 * 1024
"""A codec script's largest JSON body: escaping a character (`\\uXXXX`) can triple its bytes."""


def body_limits(settings: ApiSettings, extra_routers: Sequence[APIRouter]) -> BodyLimits:
    """The routes that take more than a JSON document: the device import's file, codec
    scripts, and network servers' webhooks (the routes the composition root adds)."""
    by_endpoint: dict[Any, int] = {
        devices.import_csv: settings.max_import_bytes + MULTIPART_ENVELOPE_BYTES,
        codecs_router.create_codec_script: SCRIPT_BODY_BYTES,
        codecs_router.replace_codec_script: SCRIPT_BODY_BYTES,
    }
    for extra in extra_routers:
        for route in extra.routes:
            if isinstance(route, APIRoute):
                by_endpoint[route.endpoint] = settings.max_ingest_bytes
    return BodyLimits(default_bytes=settings.max_body_bytes, by_endpoint=by_endpoint)


STATIC_DIR = Path(__file__).parent / "static"


def install_field_page(app: FastAPI) -> None:
    """The technicians' page at `/` (its files under `/static/`); it calls `/v1` with their key."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def field_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def install_problem_schema(app: FastAPI) -> None:
    """Add the `Problem` schema that every documented error response refers to."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(problem.pop("$defs", {}))
            components["Problem"] = problem
            components.setdefault("FieldProblem", FieldProblem.model_json_schema())
            document_errors_as_problems(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_errors_as_problems(schema: dict[str, Any]) -> None:
    """Make every documented error response a problem document, as the handlers answer it.

    FastAPI adds its own 422 (`application/json`, `HTTPValidationError`) to each route
    with parameters or a body, and routers included from outside `api` (webhook ingest)
    describe their errors without a body; the problem handler answers all of them as
    `application/problem+json`, so that is what the document says, whoever made the route.
    """
    problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            for status, response in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= HTTPStatus.BAD_REQUEST:
                    response["content"] = {
                        PROBLEM_MEDIA_TYPE: response.get("content", {}).get(PROBLEM_MEDIA_TYPE, problem)
                    }
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
