"""What every request passes before routing: an allowed Host, no NUL in the URL, ids with a `/`
reachable, and the browser security headers on every response. Pure ASGI middleware."""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_plus

from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.api.errors import error_response

# --- Host allow-list ------------------------------------------------------------------------------


def host_name(header: str) -> str:
    """The host name of a Host header, without the port; IPv6 literals keep no brackets."""
    header = header.strip().lower()
    if header.startswith("["):  # [::1]:8765
        end = header.find("]")
        return header[1:end] if end > 0 else ""
    name, _, _port = header.partition(":")
    return name.rstrip(".")


class HostAllowlist:
    """400 unless the Host header names one of `allowed` (DNS rebinding: a page on evil.example
    resolving to 127.0.0.1 reaches a loopback API, but its requests still say Host: evil.example).

    Not Starlette's TrustedHostMiddleware: that one cuts `[::1]:8765` at the first colon. A
    leading `*.` allows subdomains; `*` alone allows any host (for servers behind a proxy that
    checks the host itself)."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app = app
        names = [h.strip().strip("[]").lower().rstrip(".") for h in allowed]  # names, no ports
        self.any = "*" in names
        self.exact = {n for n in names if not n.startswith("*")}
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))

    def allows(self, name: str) -> bool:
        return self.any or name in self.exact or (bool(name) and name.endswith(self.suffixes) and bool(self.suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            header = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")
            name = host_name(header)
            if not self.allows(name):
                await error_response(400, f"host {name or '(none)'!r} is not served here; allowed hosts are "
                                          "set by the server (ApiSettings.allowed_hosts)")(scope, receive, send)
                return
        await self.app(scope, receive, send)


# --- URL checks and ids with a slash --------------------------------------------------------------

# Encoded slashes stay inside one path segment as this character until the `pid` convertor turns
# it back into "/". NUL can stand in for them because a real NUL is refused before routing.
SLASH = "\x00"
_ENCODED_SLASH = re.compile(rb"%2f", re.IGNORECASE)


class IdConvertor(Convertor[str]):
    """`{name:pid}`: one path segment, where %2F in the request is a `/` of the id."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return value.replace(SLASH, "/")

    def to_string(self, value: str) -> str:
        return value.replace("/", "%2F")


register_url_convertor("pid", IdConvertor())


ID_ROUTE_PREFIXES = ("/users/", "/segments/", "/review/")  # the routes whose ids use {…:pid}


class UrlGuard:
    """400 for a NUL in the path or the query string (the database would answer with a parser
    error); under `id_prefixes`, encoded slashes (%2F) stay inside their path segment."""

    def __init__(self, app: ASGIApp, id_prefixes: tuple[str, ...] = ID_ROUTE_PREFIXES) -> None:
        self.app = app
        self.id_prefixes = id_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        query = unquote_plus(scope.get("query_string", b"").decode("latin-1"), errors="replace")
        where = "path" if "\x00" in path else "query string" if "\x00" in query else None
        if where:
            await error_response(400, f"invalid request: the URL {where} contains a NUL character")(
                scope, receive, send)
            return
        raw: bytes | None = scope.get("raw_path")
        if raw and path.startswith(self.id_prefixes) and _ENCODED_SLASH.search(raw):
            pieces = _ENCODED_SLASH.split(raw.split(b"?", 1)[0])
            scope = {**scope, "path": SLASH.join(unquote(p.decode("latin-1")) for p in pieces)}
        await self.app(scope, receive, send)


# --- security headers ----------------------------------------------------------------------------

# The explorer loads only its own scripts (vendored Cytoscape, app.js); element styles are set from
# script. /docs needs the inline script swagger-ui starts with.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_CSP_DOCS = _CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")
SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = (_CSP_DOCS if scope.get("path") == "/docs" else _CSP).encode()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in [*SECURITY_HEADERS, (b"content-security-policy", csp)]
                         if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
