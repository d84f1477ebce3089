"""What keeps a web page the operator visits from using the API through the browser.

- **DNS rebinding**: a page whose host name the attacker points at this worker's address
  reaches the API as same-origin; its requests carry that name in ``Host``. A worker
  answers only the names it is known by: its canonical host (``OMNINODE_WEB_URL``), the
  bind address, ``localhost``, ``127.0.0.1``, ``::1``, any IP address (a page on an
  address is that address's own origin), and the names in ``OMNINODE_API_HOSTS``
  (``*``: any). Another name is ``421``.
- **Cross-site requests** (CSRF): a ``POST`` must say ``Content-Type: application/json``
  (``415`` otherwise), which no form and no "simple" cross-origin request can send: the
  browser asks first (a CORS preflight), and the API grants no CORS. A ``POST`` whose
  ``Sec-Fetch-Site`` is neither ``same-origin`` nor ``none``, or whose ``Origin`` is not
  the one the page was served from (its ``Host``, or a name in ``OMNINODE_API_HOSTS``),
  is ``403``. Clients other than browsers (curl, the CLI, a worker forwarding) send
  neither header and pass.
- **Framing and sniffing**: every answer carries ``X-Content-Type-Options: nosniff``,
  ``X-Frame-Options: DENY`` and ``Content-Security-Policy: frame-ancestors 'none'`` (the
  console's files the whole policy of :data:`CONSOLE_POLICY`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from yarl import URL

from app.infra.http_routing import HttpError

HOSTS_VARIABLE = "OMNINODE_API_HOSTS"
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAME_SITE = frozenset({"same-origin", "none"})  # Sec-Fetch-Site values a POST may have
JSON_TYPE = "application/json"
FRAMING = "frame-ancestors 'none'"
CONSOLE_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": FRAMING,
}
_AUTHORITY = re.compile(
    r"(?:\[(?P<v6>[0-9a-f:.]{2,45})\]|(?P<name>[a-z0-9_](?:[a-z0-9._-]{0,252})))"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


def host_of(authority: str) -> str | None:
    """The host name of a ``Host`` header or an origin's ``host[:port]`` (lowercase, no
    trailing dot, IPv6 without brackets); None when it is not one."""
    found = _AUTHORITY.fullmatch(authority.strip().lower())
    if found is None:
        return None
    return found.group("v6") or found.group("name").rstrip(".")


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def hosts_setting(raw: str) -> tuple[frozenset[str], bool]:
    """``OMNINODE_API_HOSTS``: comma-separated host names the API answers besides its own
    (lowercase), and whether it is ``*`` (any ``Host``)."""
    names = [n.strip().lower().rstrip(".") for n in raw.split(",")]
    listed = frozenset(n for n in names if n and n != "*")
    return listed, "*" in names


@dataclass(frozen=True)
class Guard:
    """The checks above, for one worker (``self_url`` read per request: ``faust worker
    --web-port`` may set it after the app is made)."""

    self_url: Callable[[], str]
    bind: str = "127.0.0.1"
    listed: frozenset[str] = frozenset()  # OMNINODE_API_HOSTS
    any_host: bool = False  # OMNINODE_API_HOSTS=*

    @classmethod
    def of(cls, self_url: Callable[[], str], bind: str, hosts: str) -> Guard:
        """The guard of a worker bound to ``bind`` with ``OMNINODE_API_HOSTS`` ``hosts``."""
        listed, any_host = hosts_setting(hosts)
        return cls(self_url, bind, listed, any_host)

    def known(self, host: str) -> bool:
        own = (URL(self.self_url()).host or "").lower().rstrip(".")
        return (
            self.any_host
            or host in LOCAL_NAMES
            or host in self.listed
            or host in (own, self.bind.lower())
            or is_ip(host)
        )

    def check_host(self, request: web.Request) -> None:
        """421 for a ``Host`` this worker is not known by (none at all passes: HTTP/1.0)."""
        given = request.headers.get("Host")
        if given is None:
            return
        host = host_of(given)
        if host is None or not self.known(host):
            raise HttpError(
                421,
                "misdirected_request",
                f"this worker does not answer for the host {given[:100]!r}; list the name in "
                f"{HOSTS_VARIABLE} if it is yours (the API answers its own host name, "
                "localhost and IP addresses)",
            )

    def check_site(self, request: web.Request) -> None:
        """403 for a request a browser sends from another site or origin."""
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site.lower() not in SAME_SITE:
            raise _forbidden(f"a {site[:20]!r} request (Sec-Fetch-Site)")
        origin = request.headers.get("Origin")
        if origin is not None and not self.same_origin(origin, request.headers.get("Host")):
            raise _forbidden(f"a request from the origin {origin[:100]!r}")

    def same_origin(self, origin: str, host: str | None) -> bool:
        scheme, sep, authority = origin.strip().lower().partition("://")
        if not sep or scheme not in ("http", "https") or host_of(authority) is None:
            return False  # "null" (a sandboxed frame, a file) included
        if host is not None and authority == host.strip().lower():
            return True
        return host_of(authority) in self.listed


def check_json(request: web.Request) -> None:
    """415 unless the request says ``Content-Type: application/json`` (a body may be empty)."""
    given = request.headers.get("Content-Type", "")
    if given.split(";", 1)[0].strip().lower() != JSON_TYPE:
        raise HttpError(
            415,
            "unsupported_media_type",
            f"a POST must send Content-Type: {JSON_TYPE} (an empty body too), not {given[:60]!r}",
        )


def secure(response: web.StreamResponse) -> None:
    """The headers every answer carries (a handler's own policy kept: the console's)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _forbidden(what: str) -> HttpError:
    return HttpError(
        403,
        "forbidden",
        f"{what} may not change state: the API takes POSTs from its own pages and from "
        "clients that are not browsers",
    )
