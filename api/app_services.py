"""What one API app runs on: its settings, engine, codecs and hooks, as one typed object.

`create_app` builds an `AppServices` and keeps it on `app.state.services`; routes and
dependencies read it through `api.deps.ServicesDep` (or `services_of(app)` outside a
request), so that every reader sees the same types the composition root handed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from sqlalchemy import Engine
from starlette.applications import Starlette

from api.rate_limits import KeyRateLimiter
from api.settings import ApiSettings
from decoders import CodecRegistry
from domain.errors import ConfigurationError
from services.codec_following import ScriptFollower
from services.webhook_targets import Resolver, resolve_host
from storage.buckets import AggregateSource, BucketExpression, date_bin_bucket
from storage.secret_box import SecretBox

DeviceRegisteredHook = Callable[[Engine, int], None]
"""Called as `hook(engine, device_id)` after a device with stored uplinks is registered."""

RedecodeHook = Callable[[Engine, int, datetime | None], None]
"""Called as `hook(engine, device_id, since)` to decode a device's stored frames again."""


@dataclass(eq=False)
class AppServices:
    """The app's collaborators; the composition root may replace one after `create_app`."""

    settings: ApiSettings
    codecs: CodecRegistry
    """The app's own registry, following the stored JS codec scripts (`api.routers.codecs`)."""
    engine_or_none: Engine | None = None
    """None until the lifespan makes one from `settings.database`; read `engine`."""
    bucket_expression: BucketExpression = date_bin_bucket
    aggregate_source: AggregateSource | None = None
    on_device_registered: DeviceRegisteredHook | None = None
    redecode: RedecodeHook | None = None
    webhook_resolver: Resolver = resolve_host
    """How webhook hosts are resolved before they are called (a test's DNS answers replace it)."""
    codec_try_limiter: KeyRateLimiter | None = field(default=None, init=False)
    """Made on first use by `api.routers.codecs.try_limiter`."""
    codec_script_follower: ScriptFollower | None = field(default=None, init=False)
    """Made on first use by `api.routers.codecs.script_follower`."""

    @property
    def engine(self) -> Engine:
        if self.engine_or_none is None:
            raise ConfigurationError("the API has no engine yet: it is made when the app starts")
        return self.engine_or_none

    @cached_property
    def secret_box(self) -> SecretBox | None:
        """The box of `LORAKOM_SECRET_KEYS`, built on first use (None when no key is set)."""
        return SecretBox.from_settings(self.settings.secrets)


def services_of(app: Starlette) -> AppServices:
    """The services of an app made by `api.app.create_app`."""
    services = getattr(app.state, "services", None)
    if not isinstance(services, AppServices):
        raise TypeError("not an app made by api.app.create_app: it has no AppServices")
    return services
