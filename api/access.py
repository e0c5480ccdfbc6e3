"""Who may do what: roles grant actions, and every non-region key sees one municipality only.

Isolation rule: a municipality the key does not belong to answers 404, exactly as a
municipality that does not exist, so a key cannot even learn which slugs exist
elsewhere. A role lacking an action in its own municipality answers 403.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from domain.errors import NotFound, PermissionDenied
from storage.api_keys import Role
from storage.models import ApiKey, Municipality


class Action(StrEnum):
    READ = "read"
    EDIT_GATEWAYS = "edit-gateways"
    EDIT_DEVICES = "edit-devices"
    MANAGE_KEYS = "manage-keys"
    REDECODE = "redecode"  # rewrites a device's readings from its stored frames
    MANAGE_MUNICIPALITIES = "manage-municipalities"
    SHARE = "share"  # opens a use case's data to another municipality or the region


_READ = frozenset({Action.READ})
ACTIONS_BY_ROLE: dict[Role, frozenset[Action]] = {
    Role.VIEWER: _READ,
    # Field technicians place and name gateways; they do not register devices.
    Role.TECHNICIAN: _READ | {Action.EDIT_GATEWAYS},
    Role.EDITOR: _READ | {Action.EDIT_GATEWAYS, Action.EDIT_DEVICES},
    Role.ADMIN: _READ
    | {Action.EDIT_GATEWAYS, Action.EDIT_DEVICES, Action.MANAGE_KEYS, Action.REDECODE, Action.SHARE},
    Role.REGION_ADMIN: frozenset(Action),
}


def is_region_admin(key: ApiKey) -> bool:
    return key.role == Role.REGION_ADMIN.value


def may(key: ApiKey, action: Action) -> bool:
    return action in ACTIONS_BY_ROLE[Role(key.role)]


def require(key: ApiKey, action: Action) -> None:
    if not may(key, action):
        raise PermissionDenied(f"the role {key.role!r} may not {action.value.replace('-', ' ')}")


def require_in(key: ApiKey, municipality: Municipality, action: Action) -> None:
    """Allow `action` on `municipality`, or answer as if a foreign municipality did not exist."""
    if not is_region_admin(key) and key.municipality_id != municipality.id:
        raise NotFound(f"no municipality {municipality.slug!r}")
    require(key, action)


def require_in_or_shared(
    key: ApiKey, municipality: Municipality, action: Action, shared_with: Callable[[int], bool]
) -> None:
    """`require_in`, except that another municipality's data may be read where it is shared.

    Only `Action.READ` crosses: a grant never lets anyone change another municipality's
    data. `shared_with(reader_municipality_id)` is asked only for a foreign read, so
    the common own-municipality request costs no extra query. Without a grant the
    answer stays the 404 of `require_in`.
    """
    reader = key.municipality_id
    foreign_read = action is Action.READ and not is_region_admin(key) and reader != municipality.id
    if foreign_read and reader is not None and shared_with(reader):
        require(key, action)
        return
    require_in(key, municipality, action)
