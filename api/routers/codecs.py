"""The codecs lorakom can decode with, and the JS codec scripts municipal IT teams register.

Codec ids are global (a device names its codec by id), so every key sees every codec and
every script; the isolation rule hides only which municipality registered a script.
A municipality's admin, or a region admin, registers scripts; only the registering
municipality's admins or a region admin change or delete one, because other towns'
devices may decode with it.

Every script is loaded into a fresh sandbox before it is stored, so a script that does
not compile is refused with the JavaScript message and line instead of failing later
on every uplink. The app's own registry (`AppServices.codecs`) follows the table through
a `ScriptFollower`: refreshed after each change, before each use here, and once at
start-up (`load_codec_scripts`), so changes made by another process are seen as well.
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Path, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from api.access import is_region_admin
from api.app_services import services_of
from api.deps import CurrentKey, SessionDep
from api.problems import problem_responses
from api.rate_limits import KeyRateLimiter
from api.schemas.codecs import (
    CodecScriptDetail,
    CodecScriptFields,
    CodecScriptIn,
    CodecScriptOut,
    ReadingOut,
    TryPayloadIn,
    TryPayloadOut,
)
from decoders import CodecRegistry, DecoderSource
from domain.errors import Conflict, DecodeError, PermissionDenied
from services.codec_following import ScriptFollower
from storage.api_keys import Role
from storage.codec_scripts import (
    CODEC_ID_PATTERN,
    ScriptFields,
    ScriptInfo,
    create_script,
    delete_script,
    get_script,
    list_scripts,
    script_owner,
    update_script,
)
from storage.models import ApiKey, Municipality

log = logging.getLogger(__name__)

router = APIRouter(tags=["codecs"])

CodecIdPath = Annotated[
    str, Path(pattern=CODEC_ID_PATTERN, max_length=200, examples=["stadtwerke-example/tp200-codec"])
]


class CodecOut(BaseModel):
    codec_id: str = Field(examples=["milesight-iot/em500-udl-codec"], description="vendor/codec")
    vendor: str
    devices: list[str] = Field(description="Device models the codec is made for")
    use_case: str | None
    source: str = Field(description="builtin | javascript | network")


@router.get(
    "/codecs",
    summary="Codecs and their use cases",
    response_model=list[CodecOut],
    responses=problem_responses(401),
)
def list_codecs(request: Request, key: CurrentKey, session: SessionDep) -> list[CodecOut]:
    registry = _synced_registry(request.app, session)
    return [
        CodecOut(
            codec_id=info.codec_id,
            vendor=info.vendor,
            devices=list(info.devices),
            use_case=info.use_case,
            source=info.source.value,
        )
        for info in registry.codecs()
    ]


@router.get(
    "/codec-scripts",
    summary="Registered JS codec scripts, without their texts",
    response_model=list[CodecScriptOut],
    responses=problem_responses(401),
)
def list_codec_scripts(key: CurrentKey, session: SessionDep) -> list[CodecScriptOut]:
    scripts = list_scripts(session)
    slugs = _slugs(session, {info.owner_municipality_id for info in scripts})
    return [_out(key, info, slugs) for info in scripts]


@router.get(
    "/codec-scripts/{codec_id:path}",
    summary="One registered JS codec script with its text",
    response_model=CodecScriptDetail,
    responses=problem_responses(401, 404),
)
def get_codec_script(codec_id: CodecIdPath, key: CurrentKey, session: SessionDep) -> CodecScriptDetail:
    stored = get_script(session, codec_id)
    slugs = _slugs(session, {stored.owner_municipality_id})
    listed = _out(key, stored, slugs)
    return CodecScriptDetail(**listed.model_dump(), script=stored.script)


@router.post(
    "/codec-scripts",
    summary="Register a JS codec script (admin); it must load in the sandbox",
    status_code=status.HTTP_201_CREATED,
    response_model=CodecScriptOut,
    responses=problem_responses(403, 409, 422),
)
def create_codec_script(
    body: CodecScriptIn, key: CurrentKey, session: SessionDep, request: Request, response: Response
) -> CodecScriptOut:
    _require_script_admin(key)
    registry = services_of(request.app).codecs
    if any(
        info.codec_id == body.codec_id and info.source is DecoderSource.BUILTIN for info in registry.codecs()
    ):
        raise Conflict(f"{body.codec_id!r} is a built-in codec; register the script under another id")
    fields = body.script_fields()
    validate_script(body.codec_id, fields)
    stored = create_script(session, body.codec_id, fields, owner_municipality_id=key.municipality_id)
    session.commit()
    _synced_registry(request.app, session)
    response.headers["Location"] = f"{request.url.path}/{body.codec_id}"
    return _out(key, stored, _slugs(session, {stored.owner_municipality_id}))


@router.put(
    "/codec-scripts/{codec_id:path}",
    summary="Replace a JS codec script (admin of its municipality, or region admin)",
    response_model=CodecScriptOut,
    responses=problem_responses(403, 404, 422),
)
def replace_codec_script(
    codec_id: CodecIdPath, body: CodecScriptFields, key: CurrentKey, session: SessionDep, request: Request
) -> CodecScriptOut:
    """Devices using the codec decode with the new script from their next uplink; their stored
    history keeps its readings until it is decoded again (the device's redecode action)."""
    _require_owner(key, script_owner(session, codec_id))
    fields = body.script_fields()
    validate_script(codec_id, fields)
    stored = update_script(session, codec_id, fields)
    session.commit()
    _synced_registry(request.app, session)
    return _out(key, stored, _slugs(session, {stored.owner_municipality_id}))


@router.delete(
    "/codec-scripts/{codec_id:path}",
    summary="Delete a JS codec script no device uses (admin of its municipality, or region admin)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(403, 404, 409),
)
def delete_codec_script(
    codec_id: CodecIdPath, key: CurrentKey, session: SessionDep, request: Request
) -> None:
    _require_owner(key, script_owner(session, codec_id))
    delete_script(session, codec_id)
    session.commit()
    _synced_registry(request.app, session)


# Trying a script runs it in the sandbox: a few calls at once (`ApiSettings.codec_try_burst`), then
# one every two seconds per key unless configured otherwise (`ApiSettings.codec_try_per_minute`).
TRY_ROLES = (Role.EDITOR.value, Role.ADMIN.value, Role.REGION_ADMIN.value)


def try_limiter(app: FastAPI) -> KeyRateLimiter:
    """The app's per-key allowance for trying scripts, made on first use."""
    services = services_of(app)
    with _FOLLOWER_LOCK:
        limiter = services.codec_try_limiter
        if limiter is None:
            limiter = KeyRateLimiter(
                what="try a codec script",
                burst=services.settings.codec_try_burst,
                per_minute=services.settings.codec_try_per_minute,
            )
            services.codec_try_limiter = limiter
        return limiter


@router.post(
    "/codec-scripts/{codec_id:path}/test",
    summary="Decode one payload with a registered JS codec script (editor and up, rate-limited per key)",
    response_model=TryPayloadOut,
    responses=problem_responses(401, 403, 404, 422, 429),
)
def try_codec_script(
    codec_id: CodecIdPath, body: TryPayloadIn, key: CurrentKey, session: SessionDep, request: Request
) -> TryPayloadOut:
    """What an editor runs before assigning the codec to devices: the decoded object, the
    readings lorakom makes of it, and the script's warnings; a failure (a script exception,
    the time or memory limit, a script busy with other calls) answers 422 with the sandbox's
    message. Running a script costs real work, so viewers and technicians may not, and each
    key has an allowance (429 with Retry-After beyond it). The script runs in the key's
    municipality's own isolate, so it sees nothing another town's payloads left behind."""
    if key.role not in TRY_ROLES:
        raise PermissionDenied(f"the role {key.role!r} may not try codec scripts; an editor may")
    script_owner(session, codec_id)  # 404 unless registered
    try_limiter(request.app).take(key.id)
    registry = _synced_registry(request.app, session)
    follower = script_follower(request.app)
    if codec_id in follower.failures:
        raise DecodeError(follower.failures[codec_id])
    outcome = registry.decode(
        codec_id=codec_id,
        f_port=body.f_port,
        payload=body.payload(),
        network_decoded=None,
        device_metadata=body.metadata,
        preference=(DecoderSource.JAVASCRIPT,),
        municipality_id=key.municipality_id,
    )
    if not outcome.ok or outcome.decoded is None:
        raise DecodeError(outcome.error or "the script decoded nothing")
    return TryPayloadOut.model_validate(
        {
            "decoded": outcome.decoded,
            "readings": [ReadingOut.of(reading) for reading in outcome.readings],
            "warnings": list(outcome.warnings),
        }
    )


def validate_script(codec_id: str, fields: ScriptFields) -> None:
    """Load the script into a sandbox of its own; DecodeError (JS message and line) if it fails.

    A throwaway registry, not the app's: the stored and the live script change together,
    after the database has taken the new one.
    """
    sandbox = CodecRegistry()
    try:
        sandbox.register_javascript(
            codec_id, fields.script, style=fields.style, devices=fields.devices, use_case=fields.use_case
        )
    finally:
        sandbox.close()


# -- the app's registry following the table ---------------------------------------------------

_FOLLOWER_LOCK = threading.Lock()


def script_follower(app: FastAPI) -> ScriptFollower:
    """The follower of the app's codecs; a new one if the registry was swapped after start-up."""
    services = services_of(app)
    with _FOLLOWER_LOCK:
        follower = services.codec_script_follower
        if follower is None or follower.registry is not services.codecs:
            follower = ScriptFollower(services.codecs)
            services.codec_script_follower = follower
        return follower


def _synced_registry(app: FastAPI, session: Session) -> CodecRegistry:
    script_follower(app).refresh(session)
    return services_of(app).codecs


async def load_codec_scripts(app: FastAPI) -> None:
    """Register the stored scripts in the app's codecs; call from the lifespan once the app has
    its engine. Runs in a worker thread (compiling scripts takes a while). A database
    that cannot be reached is only logged: the first request that needs the scripts loads them.
    """

    def load() -> None:
        with Session(services_of(app).engine) as session:
            changed = script_follower(app).refresh(session)
        log.info("loaded %d codec script(s)", len(changed))

    try:
        await anyio.to_thread.run_sync(load)
    except OperationalError as exc:
        log.warning("codec scripts not loaded at start-up, the database cannot be reached: %s", exc)


def unload_codec_scripts(app: FastAPI) -> None:
    """Unregister the scripts `load_codec_scripts` and later refreshes registered, freeing their
    isolates; call when the lifespan ends (the registry may outlive the app)."""
    follower = services_of(app).codec_script_follower
    if follower is not None:
        follower.forget()


# -- who may do what --------------------------------------------------------------------------


def _require_script_admin(key: ApiKey) -> None:
    if key.role not in (Role.ADMIN.value, Role.REGION_ADMIN.value):
        raise PermissionDenied(f"the role {key.role!r} may not register codec scripts; an admin may")


def _require_owner(key: ApiKey, owner_municipality_id: int | None) -> None:
    _require_script_admin(key)
    if not _may_change(key, owner_municipality_id):
        raise PermissionDenied(
            "only the admins of the municipality that registered this script, or a region admin, "
            "may change it"
        )


def _may_change(key: ApiKey, owner_municipality_id: int | None) -> bool:
    if is_region_admin(key):
        return True
    return (
        key.role == Role.ADMIN.value
        and owner_municipality_id is not None
        and key.municipality_id == owner_municipality_id
    )


def _slugs(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = {found for found in ids if found is not None}
    if not wanted:
        return {}
    rows = session.execute(select(Municipality.id, Municipality.slug).where(Municipality.id.in_(wanted)))
    return {row.id: row.slug for row in rows}


def _out(key: ApiKey, info: ScriptInfo, slugs: dict[int, str]) -> CodecScriptOut:
    owner = info.owner_municipality_id
    visible = owner is not None and (is_region_admin(key) or key.municipality_id == owner)
    return CodecScriptOut.of(
        info,
        owner_municipality=slugs.get(owner) if visible and owner is not None else None,
        may_change=_may_change(key, owner),
    )
