"""Where outgoing webhooks may go, and the one way they are sent.

A webhook URL is chosen by a municipality's admin, but the POST leaves from inside
the platform's network. Unchecked, it reaches what only the platform can reach: the
cloud's metadata service at 169.254.169.254, PostgreSQL on localhost:5432, a router's
admin page; and a delivery log that tells open from closed ports turns it into a
port scanner. So:

- https only, unless `LORAKOM_WEBHOOK_ALLOW_HTTP` (tests, closed networks);
- no credentials in the URL (they would be sent as Basic auth to whoever answers);
- the host is resolved when the request is sent, EVERY address it resolves to must be
  public (`refusal` lists what is not, including IPv4 hidden in IPv6 forms), and the
  connection goes to an address that was checked: the request is sent to that
  address with the original `Host` header and TLS server name, so the certificate is
  still checked for the name, and a DNS answer that changes between the check and
  the connection (rebinding) changes nothing;
- redirects are not followed, response bodies never read, and the outcome is kept
  only as a class (`Outcome`), with no text that could describe the far side;
- `LORAKOM_WEBHOOK_ALLOWED_PRIVATE_TARGETS` names the exceptions of a closed network:
  address ranges (`10.20.0.0/16`, `127.0.0.1`) or host names (`leitstelle.intern`).

Creating a subscription runs the same checks, so an admin learns of a refused URL at
once (422) rather than from a delivery log; delivery checks again, because DNS moves.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

import httpx
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.errors import InvalidIdentifier

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[IPAddress]]
"""host name, port → every address a connection could go to."""

WEBHOOK_TIMEOUT_S = 10.0


class WebhookSettings(BaseSettings):
    """`LORAKOM_WEBHOOK_…`: the exceptions a closed network needs; the defaults refuse them."""

    model_config = SettingsConfigDict(env_prefix="LORAKOM_WEBHOOK_", extra="forbid")

    allow_http: bool = False
    """Allow plain `http://` URLs (their content and signature travel readable)."""
    allowed_private_targets: list[str] = Field(default_factory=list)
    """Address ranges or host names that may be private, e.g. `["10.20.0.0/16", "leitstelle.intern"]`."""

    @field_validator("allowed_private_targets")
    @classmethod
    def _each_a_network_or_name(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            if _network(entry) is None and not _is_host_name(_normalized_name(entry)):
                raise ValueError(f"{entry!r} is neither an address range nor a host name")
        return entries

    def allowed_networks(self) -> list[IPNetwork]:
        return [network for entry in self.allowed_private_targets if (network := _network(entry)) is not None]

    def allowed_names(self) -> set[str]:
        return {_normalized_name(entry) for entry in self.allowed_private_targets if _network(entry) is None}


class TargetRefused(InvalidIdentifier):
    """A webhook URL the platform will not send to (a URL is an identifier: 422 at the API)."""


class Outcome(StrEnum):
    """All that the delivery log keeps of an attempt: no status text, no error message."""

    SUCCESS = "2xx"
    REDIRECT = "3xx"
    CLIENT_ERROR = "4xx"
    SERVER_ERROR = "5xx"
    TIMEOUT = "timeout"
    REFUSED_BY_POLICY = "refused-by-policy"
    NETWORK_ERROR = "network-error"

    @classmethod
    def of_status(cls, status_code: int) -> Outcome:
        if 200 <= status_code < 300:
            return cls.SUCCESS
        if 300 <= status_code < 400:
            return cls.REDIRECT
        if 400 <= status_code < 500:
            return cls.CLIENT_ERROR
        if 500 <= status_code < 600:
            return cls.SERVER_ERROR
        return cls.NETWORK_ERROR  # not HTTP as anyone speaks it


# --- which addresses are refused -----------------------------------------------------------------

_V4_REFUSED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "reserved (documentation)"),
    ("192.88.99.0/24", "reserved (6to4 relay)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved (benchmarking)"),
    ("198.51.100.0/24", "reserved (documentation)"),
    ("203.0.113.0/24", "reserved (documentation)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)
_V6_REFUSED: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible"),
    ("::ffff:0:0:0/96", "IPv4-translated"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "reserved (discard)"),
    ("2001::/32", "Teredo tunnel"),
    ("2001::/23", "reserved (IETF protocol assignments)"),
    ("2001:db8::/32", "reserved (documentation)"),
    ("3fff::/20", "reserved (documentation)"),
    ("5f00::/16", "reserved (segment routing)"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
_V4_TABLE = [(ipaddress.IPv4Network(network), reason) for network, reason in _V4_REFUSED]
_V6_TABLE = [(ipaddress.IPv6Network(network), reason) for network, reason in _V6_REFUSED]
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NEVER_A_RECEIVER = ("unspecified", "multicast")
"""Refused even when a closed network's exception names them: no server answers there."""


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries to (IPv4-mapped, 6to4, NAT64), if any.

    `::ffff:127.0.0.1` is loopback to a dual-stack socket; 6to4 and NAT64 gateways
    forward to the IPv4 address inside. Each is checked as that IPv4 address.
    """
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress) -> str | None:
    """Why a connection to `address` is refused, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            reason = refusal(inner)
            return f"{reason}, inside an IPv6 address" if reason else None
        for v6_network, reason in _V6_TABLE:
            if address in v6_network:
                return reason
        return None if address in _GLOBAL_UNICAST else "reserved"
    for v4_network, reason in _V4_TABLE:
        if address in v4_network:
            return reason
    return None


# --- URLs ----------------------------------------------------------------------------------------


def _network(entry: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        return None


def _normalized_name(host: str) -> str:
    """Lower case, without the one trailing dot that names the same host (`localhost.`)."""
    name = host.strip().lower()
    return name[:-1] if name.endswith(".") else name


def _is_host_name(name: str) -> bool:
    labels = name.split(".")
    return 0 < len(name) <= 253 and all(
        0 < len(label) <= 63 and all(ch.isalnum() or ch in "-_" for ch in label) and label.isascii()
        for label in labels
    )


def literal_address(host: str) -> IPAddress | None:
    """The address a host names by itself, in any spelling a resolver would accept.

    Besides dotted quads and IPv6, the C library reads `127.1`, `2130706433`,
    `0x7f000001` and `0177.0.0.1` as 127.0.0.1; they are read the same way here, so
    no spelling of an address passes as a name.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(ch in "0123456789abcdefx." for ch in host.lower()):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A parsed webhook URL: `host` is a normalized name, or None when the URL names an address."""

    url: httpx.URL
    host: str | None
    address: IPAddress | None
    port: int


def parse_target(url: str, settings: WebhookSettings) -> WebhookTarget:
    """The checks that need no DNS: scheme, credentials, host, and an address written in the URL."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise TargetRefused(f"webhook URL is not a valid URL: {exc}") from exc
    if parsed.scheme not in ("https", "http"):
        raise TargetRefused("webhook URL must be https")
    if parsed.scheme == "http" and not settings.allow_http:
        raise TargetRefused("webhook URL must be https (plain http is not allowed on this installation)")
    if parsed.userinfo:
        raise TargetRefused("webhook URL must not contain credentials (user:password@)")
    if not parsed.host:
        raise TargetRefused("webhook URL has no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    address = literal_address(parsed.host)
    if address is not None:
        _check_address(address, settings, exempt_name=False)
        return WebhookTarget(parsed, None, address, port)
    name = _normalized_name(parsed.host)
    if not _is_host_name(name):
        raise TargetRefused("webhook URL's host is not a valid host name")
    return WebhookTarget(parsed, name, None, port)


def _check_address(address: IPAddress, settings: WebhookSettings, *, exempt_name: bool) -> None:
    reason = refusal(address)
    if reason is None:
        return
    if reason not in _NEVER_A_RECEIVER and (
        exempt_name or any(address in network for network in settings.allowed_networks())
    ):
        return
    raise TargetRefused(f"webhook URL refused: its host is or resolves to an address that is {reason}")


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for `host` (DNS, /etc/hosts)."""
    found: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def checked_addresses(
    target: WebhookTarget, settings: WebhookSettings, resolver: Resolver
) -> list[IPAddress]:
    """The addresses to connect to, each one checked; `TargetRefused` if any is refused.

    Every address is checked, not only the first: which one a connection would use
    depends on the resolver's order, which an attacker's DNS server chooses.
    Raises `OSError` when the name does not resolve.
    """
    if target.address is not None:
        return [target.address]
    assert target.host is not None
    addresses = resolver(target.host, target.port)
    if not addresses:
        raise socket.gaierror(f"{target.host} resolves to no address")
    exempt = target.host in settings.allowed_names()
    for address in addresses:
        _check_address(address, settings, exempt_name=exempt)
    return addresses


def check_new_target(url: str, settings: WebhookSettings, resolver: Resolver = resolve_host) -> None:
    """What a new subscription's URL must pass: `TargetRefused` with the reason, else nothing.

    A name that does not resolve (yet) is accepted: the receiver may be set up after
    its subscription, and every delivery checks again.
    """
    target = parse_target(url, settings)
    try:
        checked_addresses(target, settings, resolver)
    except OSError:
        return


# --- sending -------------------------------------------------------------------------------------


class WebhookSender:
    """Sends a webhook POST to a checked, pinned address, and says only how it went.

    The client ignores proxy variables (a proxy would make the connection to an
    address nobody checked) and follows no redirect (a `Location` is a new, unchecked
    URL). `resolver` and `verify` are seams for tests: a resolver whose answer
    changes, a CA of a test server.
    """

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        resolver: Resolver = resolve_host,
        verify: ssl.SSLContext | bool = True,
        timeout_s: float = WEBHOOK_TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self.resolver = resolver
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False, verify=verify)

    def __enter__(self) -> WebhookSender:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
        try:
            target = parse_target(url, self.settings)
            addresses = checked_addresses(target, self.settings, self.resolver)
        except TargetRefused:
            return Outcome.REFUSED_BY_POLICY
        except OSError:
            return Outcome.NETWORK_ERROR
        outcome = Outcome.NETWORK_ERROR
        for address in addresses:
            outcome = self._post_to(target, address, body, headers)
            if outcome is not Outcome.NETWORK_ERROR:
                break
        return outcome

    def _post_to(
        self, target: WebhookTarget, address: IPAddress, body: bytes, headers: Mapping[str, str]
    ) -> Outcome:
        pinned = target.url.copy_with(host=str(address))
        extensions = {}
        if target.host is not None and target.url.scheme == "https":
            # The TLS server name, and so the name the certificate is checked for.
            extensions["sni_hostname"] = target.host
        request = self._client.build_request(
            "POST",
            pinned,
            content=body,
            headers={**headers, "Host": target.url.netloc.decode("ascii")},
            extensions=extensions,
        )
        try:
            response = self._client.send(request, stream=True)
        except httpx.TimeoutException:
            return Outcome.TIMEOUT
        except httpx.HTTPError:
            return Outcome.NETWORK_ERROR
        response.close()  # the body is never read: nothing of it is kept, and it may be huge
        return Outcome.of_status(response.status_code)
