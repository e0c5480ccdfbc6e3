"""The users file: who gets a Grafana login in which organisation, and with which role."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from domain.errors import ConfigurationError
from storage.reader_roles import ReaderTarget

REGION = "region"
"""How the users file names the region's organisation (no slug can be mistaken for it: see `org_key`)."""

GrafanaRole = Literal["Viewer", "Editor", "Admin"]


class TownUser(BaseModel):
    """A user made in every town's organisation; `{slug}` in login, name and email is the town's slug."""

    model_config = ConfigDict(extra="forbid")

    login: str
    role: GrafanaRole = "Viewer"
    name: str | None = None
    email: str | None = None


class NamedUser(BaseModel):
    """A user of one organisation: `org` is a municipality slug or "region"."""

    model_config = ConfigDict(extra="forbid")

    login: str
    org: str
    role: GrafanaRole = "Viewer"
    name: str | None = None
    email: str | None = None
    password_env: str | None = None
    """The environment variable holding the first password; without it one is generated and shown once."""


class UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    town_user: list[TownUser] = []
    user: list[NamedUser] = []


def load_users(path: Path | None) -> UsersFile:
    if path is None:
        return UsersFile()
    try:
        return UsersFile.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"users file {path} does not exist (copy the example next to it)") from exc
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConfigurationError(f"users file {path}: {exc}") from exc


@dataclass(frozen=True)
class UserSpec:
    login: str
    role: GrafanaRole
    name: str | None
    email: str | None
    password_env: str | None


def org_key(target: ReaderTarget) -> str:
    return target.slug if target.slug is not None else REGION


def users_for(target: ReaderTarget, users: UsersFile) -> list[UserSpec]:
    specs = []
    if target.slug is not None:
        for template in users.town_user:
            fill = {"slug": target.slug, "name": target.name}
            specs.append(
                UserSpec(
                    template.login.format(**fill),
                    template.role,
                    template.name.format(**fill) if template.name else None,
                    template.email.format(**fill) if template.email else None,
                    None,
                )
            )
    for named in users.user:
        if named.org == org_key(target):
            specs.append(UserSpec(named.login, named.role, named.name, named.email, named.password_env))
    return specs
