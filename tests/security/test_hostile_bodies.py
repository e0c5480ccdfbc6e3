"""Hostile request bodies at every route that takes one: no body may cost a 5xx, and every
refusal is an `application/problem+json` 4xx.

The routes come from the OpenAPI document (those with a `requestBody`); each starts from
the valid body `POLICY` knows for it. Whole-body attacks (a wrong content type, broken
JSON, invalid UTF-8, nesting deeper than any parser's stack, an array instead of the
object) must be refused, with a key and without one. Attacks on one part (a number
made 2**64, a NUL in a string or a key, a string of 1,000,000 characters, an array where
an object goes) are made at one place of the body at a time, so that the rest of it
stays valid and the hostile part is what the app has to deal with: it may refuse it,
or ignore it, but never store it (an answer echoing it back is a failure too).
"""

from __future__ import annotations

import gc
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.api.data import auth
from tests.security.policy import POLICY, Route, Target, document_routes, request_url
from tests.security.world import World

HUGE = 2**64
LONG = "x" * 1_000_000
NESTING = 100_000
Json = Any


@dataclass(frozen=True)
class Hostile:
    """One hostile request body: its bytes, its content type, and what must not come back."""

    name: str
    content: bytes
    content_type: str
    must_refuse: bool = True
    """False where a 2xx can be right: a hostile part the app may ignore, or the CSV import,
    which answers bad rows with a 200 report of them."""
    echo: str | None = None
    """Text that an accepting answer must not contain: the app kept the hostile part."""


@dataclass(frozen=True)
class Attack:
    """A way to make a valid body hostile; applied to a fresh valid body each time, so that
    a body which creates something never collides with the one before (a 409 would hide
    what the app does with the hostile part)."""

    name: str
    make: Callable[[Json], bytes]
    content_type: str = "application/json"
    echo: str | None = None

    def on(self, valid: Json) -> Hostile:
        return Hostile(self.name, self.make(valid), self.content_type, self.echo is None, self.echo)


def encoded(value: Json) -> bytes:
    return json.dumps(value).encode()


def whole_body_attacks() -> list[Attack]:
    return [
        Attack("wrong content type", encoded, "text/plain"),
        Attack("form content type", encoded, "application/x-www-form-urlencoded"),
        Attack("invalid JSON", lambda valid: encoded(valid)[:-1]),
        Attack("invalid UTF-8", lambda valid: encoded(valid)[:-1] + b', "\xff\xfe": "\xc3\x28"}'),
        Attack("deeply nested arrays", lambda valid: b"[" * NESTING + b"]" * NESTING),
        Attack("deeply nested objects", lambda valid: b'{"a":' * NESTING + b"1" + b"}" * NESTING),
        Attack("an array for the body", lambda valid: encoded([valid])),
        Attack("a bare string with NUL for the body", lambda valid: encoded("\u0000")),
        Attack("an empty body", lambda valid: b""),
    ]


Path = tuple[str | int, ...]


def places(value: Json, path: Path = ()) -> Iterator[tuple[Path, Json]]:
    """Every place in a JSON value, with the value found there."""
    yield path, value
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from places(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from places(inner, (*path, index))


def replaced(value: Json, path: Path, new: Callable[[Json], Json]) -> Json:
    """`value` with the part at `path` replaced by `new(part)`."""
    if not path:
        return new(value)
    head, *tail = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = replaced(value[head], tuple(tail), new)  # type: ignore[index]
    return copy


def at(path: Path) -> str:
    return "/" + "/".join(str(part) for part in path)


def with_nul(text: str) -> str:
    return text[: len(text) // 2] + "\u0000" + text[len(text) // 2 :]


def one_place_attacks(sample: Json) -> list[Attack]:
    """Each hostile part at one place of an otherwise valid body (places found in `sample`)."""

    def there(path: Path, new: Callable[[Json], Json]) -> Callable[[Json], bytes]:
        return lambda valid: encoded(replaced(valid, path, new))

    attacks = []
    for path, value in places(sample):
        where = at(path)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            attacks.append(Attack(f"2**64 at {where}", there(path, lambda _: HUGE), echo=str(HUGE)))
        if isinstance(value, str):
            attacks += [
                Attack(f"NUL in the string at {where}", there(path, with_nul), echo="\\u0000"),
                Attack(f"1,000,000 characters at {where}", there(path, lambda _: LONG), echo=LONG),
            ]
        if isinstance(value, dict):
            attacks += [
                Attack(
                    f"NUL in a key at {where}",
                    there(path, lambda part: {**part, "not\u0000e": "x"}),
                    echo="\\u0000",
                ),
                Attack(
                    f"2**64 under a new key at {where}",
                    there(path, lambda part: {**part, "zahl": HUGE}),
                    echo=str(HUGE),
                ),
                Attack(
                    f"1,000,000 characters under a new key at {where}",
                    there(path, lambda part: {**part, "text": LONG}),
                    echo=LONG,
                ),
                Attack(f"an array for the object at {where}", there(path, lambda part: [part])),
            ]
    return attacks


def csv_attacks() -> list[Hostile]:
    """The CSV import's body is a multipart upload: its own ways to be hostile."""
    boundary = "grenze"

    def upload(data: bytes) -> bytes:
        return (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.csv"\r\n'
                "Content-Type: text/csv\r\n\r\n"
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )

    multipart = f"multipart/form-data; boundary={boundary}"
    header = b"dev_eui,name\n"
    row = secrets.token_hex(8).encode() + b","
    return [
        Hostile("JSON instead of an upload", b'{"file": "x"}', "application/json"),
        Hostile("multipart without a boundary", upload(header), "multipart/form-data"),
        Hostile("multipart that never ends", upload(header)[:-12], multipart),
        Hostile("invalid UTF-8 in the file", upload(header + row + b"\xff\xfe\n"), multipart),
        Hostile("NUL in the file", upload(header + row + b"a\x00b\n"), multipart),
        # The import answers bad rows with a 200 report, so these may be answered either way.
        Hostile(
            "a field of 200,000 characters",
            upload(header + row + b"y" * 200_000 + b"\n"),
            multipart,
            must_refuse=False,
        ),
        Hostile("an unclosed quote", upload(header + row + b'"Marktplatz\n'), multipart, must_refuse=False),
        Hostile(
            "a line of 70,000 commas", upload(header + b"," * 70_000 + b"\n"), multipart, must_refuse=False
        ),
    ]


def body_routes(client: TestClient) -> list[Route]:
    document: dict[str, Any] = client.app.openapi()  # type: ignore[attr-defined]
    with_body = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    }
    return [route for route in document_routes(client) if (route.method, route.path) in with_body]


def own_target(world: World, route: Route) -> Target:
    """The own town's resources: a request that reaches the handler with a valid body."""
    policy = POLICY[(route.method, route.path)]
    return Target(
        world.own.slug, {name: world.value(policy.kind_of(name), world.own) for name in route.path_ids}
    )


def judge(response: Any, hostile: Hostile, who: str) -> list[str]:
    where = f"{hostile.name} ({who})"
    status, content_type = response.status_code, response.headers.get("content-type", "")
    problems = []
    if status >= 500:
        problems.append(f"{where}: {status} {response.text[:200]}")
    elif status >= 400 and not content_type.startswith("application/problem+json"):
        problems.append(f"{where}: {status} as {content_type!r}, not problem+json: {response.text[:200]}")
    elif status < 400 and hostile.must_refuse:
        problems.append(f"{where}: accepted with {status}, not refused")
    elif status < 400 and hostile.echo is not None and hostile.echo in response.text:
        problems.append(f"{where}: accepted with {status}, and the hostile part was kept")
    return problems


def test_every_route_with_a_body_has_a_valid_one(client: TestClient) -> None:
    """A new route with a body needs a valid body in POLICY, from which its attacks start."""
    missing = [
        route.label
        for route in body_routes(client)
        if (policy := POLICY.get((route.method, route.path))) is None or policy.body is None
    ]
    assert missing == []


def _labels() -> list[tuple[str, str]]:
    return sorted(key for key, policy in POLICY.items() if policy.body is not None)


@pytest.mark.parametrize(("method", "path"), _labels(), ids=lambda value: str(value))
def test_hostile_bodies_are_refused_as_problems(
    world: World, probe: TestClient, method: str, path: str
) -> None:
    routes = {(route.method, route.path): route for route in body_routes(probe)}
    assert (method, path) in routes, f"{method} {path} takes no body in the OpenAPI document"
    route, policy = routes[(method, path)], POLICY[(method, path)]
    make_valid = policy.body
    assert make_valid is not None
    target = own_target(world, route)
    url = request_url(route, target)
    if policy.upload:
        whole = everything = csv_attacks()
    else:
        whole = [attack.on(make_valid(world, target)) for attack in whole_body_attacks()]
        every_place = one_place_attacks(make_valid(world, target))
        everything = whole + [attack.on(make_valid(world, target)) for attack in every_place]
    problems: list[str] = []
    for hostile in everything:
        headers = {"Content-Type": hostile.content_type, **auth(world.region_key)}
        response = probe.request(method, url, content=hostile.content, headers=headers)
        problems += judge(response, hostile, "region admin")
    for hostile in whole:
        headers = {"Content-Type": hostile.content_type}
        response = probe.request(method, url, content=hostile.content, headers=headers)
        problems += judge(response, hostile, "no key")
    assert not problems, f"{method} {path}:\n" + "\n".join(problems)


def test_an_upload_cut_short_is_refused_and_leaves_no_file_open(world: World, probe: TestClient) -> None:
    """A multipart body that stops inside its file, before the closing boundary: the multipart
    parser sees no error in that, so a spooled part of it was once neither in the form nor
    closed (pytest reports such a file when it is collected). The import must say that the
    body is cut short, not that the form lacks a file."""
    boundary = "grenze"
    cut_short = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\ndev_eui,name\n{secrets.token_hex(8)},Halb"
    ).encode()
    response = probe.post(
        f"/v1/municipalities/{world.own.slug}/devices/import",
        content=cut_short,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **auth(world.region_key)},
    )
    gc.collect()
    # 422, as every body the app cannot read (one rule for the whole API), naming what is wrong.
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "closing boundary" in response.text
