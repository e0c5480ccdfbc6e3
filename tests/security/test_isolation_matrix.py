"""The isolation matrix: every route of the OpenAPI document × every kind of caller × every
relation between the caller's town and the town (or resource) the request names.

The routes come from `app.openapi()` of the app as a deployment composes it (webhook
ingest included), so a new route is probed without a new test; what each route should
answer is declared once, in `tests/security/policy.py`, and a route that table does not
classify fails `test_the_policy_classifies_every_route`. Who may do what (`MAY`) is
written here, not read from `api.access`, so that a change to it shows up as a failing
test instead of silently moving the goalposts.

2,456 requests: 75 routes × 8 callers × up to 6 relations, on towns made once per module.

Every answer is held to four rules besides its expected status:
- no 2xx across towns except a read of a use case the other town shares;
- another town, or another town's id under the own slug, answers exactly as a slug or
  id that does not exist (same status and problem, once the named value is masked);
- no 5xx; every error is `application/problem+json`;
- no answer to a key of the own town (or to no key) carries another town's slug,
  which every resource name contains, except the data of a shared use case.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.access import Action
from tests.api.data import auth
from tests.security.policy import POLICY, WASTE, Door, Policy, Route, Target, document_routes, request_url
from tests.security.world import World, unknown_value

# -- who calls ----------------------------------------------------------------------------------

REGION_ADMIN = "region-admin"
MUNICIPAL = ("admin", "editor", "viewer", "technician")
NO_KEY, WRONG_KEY, REVOKED_KEY = "no key", "wrong key", "revoked key"
UNAUTHENTICATED = (NO_KEY, WRONG_KEY, REVOKED_KEY)
CALLERS = (REGION_ADMIN, *MUNICIPAL, *UNAUTHENTICATED)

EVERY_ROLE = frozenset({REGION_ADMIN, *MUNICIPAL})
MAY: dict[Action, frozenset[str]] = {
    Action.READ: EVERY_ROLE,
    Action.EDIT_GATEWAYS: frozenset({REGION_ADMIN, "admin", "editor", "technician"}),
    Action.EDIT_DEVICES: frozenset({REGION_ADMIN, "admin", "editor"}),
    Action.MANAGE_KEYS: frozenset({REGION_ADMIN, "admin"}),
    Action.REDECODE: frozenset({REGION_ADMIN, "admin"}),
    Action.SHARE: frozenset({REGION_ADMIN, "admin"}),
    Action.MANAGE_MUNICIPALITIES: frozenset({REGION_ADMIN}),
}
"""Who may do what in the own town, declared independently of `api.access.ACTIONS_BY_ROLE`."""


class Relation(Enum):
    """How the town or resource a request names relates to the caller's town."""

    OWN = "own town"
    OTHER = "another town"
    SHARED = "a town sharing the route's use case"
    UNKNOWN_SLUG = "a slug that does not exist"
    FOREIGN_ID = "another town's ids under the own slug"
    UNKNOWN_ID = "ids that do not exist (under the own slug, if any)"
    NONE = "no town named"


def relations(route: Route, policy: Policy) -> tuple[Relation, ...]:
    ids = (*route.path_ids, *policy.query_ids)
    if "{slug}" in route.path:
        named = (Relation.OWN, Relation.OTHER, Relation.SHARED, Relation.UNKNOWN_SLUG)
        return (*named, Relation.FOREIGN_ID, Relation.UNKNOWN_ID) if ids else named
    if ids:
        return (Relation.OWN, Relation.OTHER, Relation.UNKNOWN_ID)
    return (Relation.NONE,)


# -- what each caller should get ----------------------------------------------------------------


def expected_status(policy: Policy, caller: str, relation: Relation) -> int:
    if policy.door is Door.OPEN:
        return policy.success
    if caller in UNAUTHENTICATED or policy.door in (Door.WEBHOOK, Door.METRICS):
        return 401  # a webhook's source, known or not, and the metrics answer an API key as no secret at all
    region = caller == REGION_ADMIN
    match policy.door:
        case Door.ANY_KEY:
            return policy.success
        case Door.REGION_ONLY:
            return policy.success if region else 403
        case Door.SCRIPT_CREATE:
            return policy.success if caller in (REGION_ADMIN, "admin") else 403
        case Door.SCRIPT_READ:
            return 404 if relation is Relation.UNKNOWN_ID else policy.success
        case Door.SCRIPT_TRY:
            # The role first, as at a town's door: a viewer may try no script, existing or not
            # (script ids are public, so neither order tells anything).
            if caller not in (REGION_ADMIN, "admin", "editor"):
                return 403
            return 404 if relation is Relation.UNKNOWN_ID else policy.success
        case Door.SCRIPT_OWNER:
            if relation is Relation.UNKNOWN_ID:
                return 404
            owner = region or (caller == "admin" and relation is Relation.OWN)
            return policy.success if owner else 403
    assert policy.action is not None
    allowed = caller in MAY[policy.action]
    match relation:
        case Relation.UNKNOWN_SLUG:
            return 404
        case Relation.OWN:
            return policy.success if allowed else 403
        case Relation.OTHER:
            return policy.success if region else 404
        case Relation.SHARED:
            return policy.success if region or shared_read(policy) else 404
        case Relation.FOREIGN_ID | Relation.UNKNOWN_ID:
            if not allowed:
                return 403
            return policy.success if policy.upserts else 404
    raise AssertionError(relation)


def visible_towns(world: World, policy: Policy, caller: str, relation: Relation) -> set[str] | None:
    """The slugs an answer to this caller may show (None: any); every other town's slug is a leak."""
    if caller == REGION_ADMIN:
        return None
    visible = {world.own.slug}
    if relation is Relation.SHARED and shared_read(policy):
        visible.add(world.sharers[policy.use_case or WASTE].slug)
    if relation is Relation.OWN and policy.names_grantors:
        visible |= {sharer.slug for sharer in world.sharers.values()}
    return visible


def shared_read(policy: Policy) -> bool:
    return policy.use_case is not None and policy.action is Action.READ


# -- making the requests ------------------------------------------------------------------------


def caller_headers(world: World, caller: str) -> dict[str, str]:
    own = world.own
    if caller == REGION_ADMIN:
        return auth(world.region_key)
    if caller == NO_KEY:
        return {}
    if caller == WRONG_KEY:
        prefix = own.keys["admin"].split("_")[1]
        return auth(f"lk_{prefix}_{'x' * 43}")
    if caller == REVOKED_KEY:
        return auth(own.revoked_key)
    return own.headers(caller)


def target_for(world: World, route: Route, policy: Policy, relation: Relation, *, fresh: bool) -> Target:
    """The slug and ids a request names: of the town `relation` stands for, or of none."""
    sharer = world.sharers[policy.use_case or WASTE]
    slug_town, id_town = {
        Relation.OWN: (world.own, world.own),
        Relation.OTHER: (world.other, world.other),
        Relation.SHARED: (sharer, sharer),
        Relation.UNKNOWN_SLUG: (None, None),
        Relation.FOREIGN_ID: (world.own, world.other),
        Relation.UNKNOWN_ID: (world.own, None),
        Relation.NONE: (None, None),
    }[relation]
    names = (*route.path_ids, *policy.query_ids)
    ids = {
        name: world.value(policy.kind_of(name), id_town, fresh=fresh)
        if id_town is not None
        else unknown_value(policy.kind_of(name))
        for name in names
    }
    slug = slug_town.slug if slug_town is not None else None
    if "{slug}" in route.path and slug is None:
        slug = unknown_value("slug")
    return Target(slug, ids)


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    text: str


def call(
    world: World, route: Route, policy: Policy, caller: str, relation: Relation, expected: int
) -> tuple[Answer, Target]:
    fresh = policy.consumes and 200 <= expected < 300
    target = target_for(world, route, policy, relation, fresh=fresh)
    kwargs: dict[str, Any] = {"headers": caller_headers(world, caller)}
    if policy.query is not None:
        kwargs["params"] = policy.query(target)
    if policy.body is not None:
        kwargs["files" if policy.upload else "json"] = policy.body(world, target)
    response = world.client.request(route.method, request_url(route, target), **kwargs)
    return Answer(response.status_code, response.headers.get("content-type", ""), response.text), target


def without_named(text: str, target: Target) -> str:
    """`text` with each value the request named (a slug, an id) masked where it stands whole."""
    for value in sorted([*target.ids.values(), target.slug or ""], key=len, reverse=True):
        if value:
            text = re.sub(rf"(?<![\w-]){re.escape(value)}(?![\w-])", "<named>", text)
    return text


def masked_problem(answer: Answer, target: Target) -> str:
    """The answer with the values the request named masked, for comparing two answers."""
    try:
        problem = json.loads(answer.text)
    except ValueError:
        return f"{answer.status} {answer.content_type} {answer.text}"
    if isinstance(problem, dict):
        problem.pop("instance", None)
        problem.pop("request_id", None)  # each request's own correlation id
        if isinstance(problem.get("detail"), str):
            problem["detail"] = without_named(problem["detail"], target)
    return f"{answer.status} {answer.content_type} {json.dumps(problem, sort_keys=True)}"


# -- the tests ----------------------------------------------------------------------------------


def test_the_policy_classifies_every_route(probe: TestClient) -> None:
    """A new route must be classified in POLICY (and so is probed), or this fails."""
    documented = {(route.method, route.path) for route in document_routes(probe)}
    assert sorted(documented - set(POLICY)) == [], "routes without a policy"
    assert sorted(set(POLICY) - documented) == [], "policies of routes that no longer exist"


def _routes_for_parametrize() -> list[tuple[str, str]]:
    return sorted(POLICY)


@pytest.mark.parametrize(("method", "path"), _routes_for_parametrize(), ids=lambda value: str(value))
def test_every_caller_in_every_relation_gets_what_the_policy_says(
    world: World, probe: TestClient, method: str, path: str
) -> None:
    routes = {(route.method, route.path): route for route in document_routes(probe)}
    if (method, path) not in routes:
        pytest.fail(f"{method} {path} is in POLICY but not in the OpenAPI document")
    route, policy = routes[(method, path)], POLICY[(method, path)]
    violations: list[str] = []
    masked: dict[tuple[str, Relation], str] = {}
    for caller in CALLERS:
        for relation in relations(route, policy):
            expected = expected_status(policy, caller, relation)
            answer, target = call(world, route, policy, caller, relation, expected)
            where = f"{caller} / {relation.value}"
            if answer.status != expected:
                violations.append(f"{where}: expected {expected}, got {answer.status}: {answer.text[:300]}")
            if answer.status >= 500:
                violations.append(f"{where}: a server error")
            if answer.status >= 400 and not answer.content_type.startswith("application/problem+json"):
                violations.append(f"{where}: an error as {answer.content_type!r}, not problem+json")
            visible = visible_towns(world, policy, caller, relation)
            if visible is not None:
                violations += leaks(world, answer, target, visible, where)
            if answer.status >= 400:
                masked[(caller, relation)] = masked_problem(answer, target)
    violations += distinguishable(masked)
    assert not violations, f"{method} {path}:\n" + "\n".join(violations)


def leaks(world: World, answer: Answer, target: Target, visible: set[str], where: str) -> list[str]:
    """Slugs of towns the caller may not see, in the answer (the values the request named aside)."""
    text = without_named(answer.text, target)
    return [
        f"{where}: the answer shows data of {town.slug}"
        for town in world.towns
        if town.slug not in visible and town.slug in text
    ]


def distinguishable(masked: dict[tuple[str, Relation], str]) -> list[str]:
    """Refusals about another town's slug or ids that differ from refusals about nothing.

    Only refusals are compared: an answer that should be a refusal and is not already
    fails on its status.
    """
    found = []
    pairs = (
        (Relation.OTHER, Relation.UNKNOWN_SLUG),
        (Relation.SHARED, Relation.UNKNOWN_SLUG),
        (Relation.FOREIGN_ID, Relation.UNKNOWN_ID),
    )
    for (caller, relation), answer in masked.items():
        if caller == REGION_ADMIN:
            continue
        for foreign, unknown in pairs:
            if relation is foreign and (caller, unknown) in masked and masked[(caller, unknown)] != answer:
                found.append(
                    f"{caller}: {foreign.value} answers {answer!r}, "
                    f"but {unknown.value} answers {masked[(caller, unknown)]!r}"
                )
    return found
