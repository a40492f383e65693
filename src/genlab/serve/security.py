"""The studio's guard: every request passes here before any route sees it.

A model server on localhost is attacked through the browser of the person using it (DNS
rebinding, cross-site requests, path traversal through file routes). This middleware:

- answers only to allowed Host names (127.0.0.1, localhost, ::1, and for a non-loopback
  bind the names given): a rebound attacker's domain gets 403;
- with a token (required on any non-loopback bind), admits a request only with it, compared
  in constant time, from a cookie the start-up URL (``/?token=...``) sets, or an
  ``Authorization: Bearer`` header (API clients): otherwise 401;
- refuses a state-changing request (any method but GET and HEAD) that is cross-site: an
  Origin that is not this server (``null`` included) or ``Sec-Fetch-Site: cross-site``
  gets 403, a body that is not JSON 415, a body over the limit 413;
- sets a Content-Security-Policy, ``nosniff``, no framing and no referrer on every response.

Routes never take paths (runs are named by id; see runs.py) and never change state on GET.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import socket
from collections.abc import Iterable
from urllib.parse import parse_qs

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' data: blob:; "
    "style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SAFE_METHODS = {"GET", "HEAD"}
MAX_BODY = 2 * 1024 * 1024  # bytes: a dropped PNG (base64) fits; nothing else comes close
MIN_TOKEN = 16


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> set[str]:
    """Host names (without port) this server answers to."""
    hosts = {"127.0.0.1", "localhost", "::1", "[::1]"}
    hosts.update(h.lower() for h in extra)
    if not is_loopback(bind):
        if bind not in ("0.0.0.0", "::", ""):
            hosts.add(bind.lower())
            if ":" in bind:
                hosts.add(f"[{bind.lower()}]")
        names = {socket.gethostname(), socket.getfqdn()}
        hosts.update(n.lower() for n in names if n)
        for name in names:
            try:
                for info in socket.getaddrinfo(name, None):
                    addr = str(info[4][0])
                    hosts.add(addr)
                    if ":" in addr:
                        hosts.add(f"[{addr}]")
            except OSError:
                pass
    return hosts


def _host_part(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.index("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """ASGI middleware around the app (see the module docstring)."""

    def __init__(self, app, *, hosts: set[str], token: str | None, port: int):
        self.app, self.hosts, self.token, self.port = app, hosts, token, port
        self.cookie = f"genlab_token_{port}"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        send_secured = _with_security_headers(send, scope["path"])

        host = _host_part(headers.get("host", ""))
        if host not in self.hosts:
            return await _refuse(
                send_secured,
                403,
                f"Host {headers.get('host', '')[:100]!r} is not allowed (a DNS-rebinding "
                "guard); open the server by the URL it printed, or start it with "
                "--allow-host NAME",
            )

        set_cookie = None
        if self.token is not None:
            given, set_cookie = self._token_given(headers, scope, method)
            if given is None or not hmac.compare_digest(
                given.encode("utf-8", "replace"), self.token.encode()
            ):
                return await _refuse(
                    send_secured,
                    401,
                    "this server needs its token: open the URL it printed at start-up "
                    "(…/?token=…), or send Authorization: Bearer TOKEN",
                    [(b"www-authenticate", b"Bearer")],
                )

        if method not in SAFE_METHODS:
            refusal = self._state_change_refusal(headers)
            if refusal is not None:
                return await _refuse(send_secured, *refusal)
            # read the body here, whole: past the limit (chunked bodies have no length to
            # check first) the answer is 413, before any route or parser sees a byte
            body = await _read_body(receive, MAX_BODY)
            if body is None:
                return await _refuse(
                    send_secured, 413, f"the request body is larger than {MAX_BODY:,} bytes"
                )
            receive = _replay_body(body, receive)

        if set_cookie is not None:  # the start-up URL: keep the token in a cookie, drop it from the URL
            return await self._keep_token(send_secured, set_cookie)

        await self.app(scope, receive, send_secured)

    def _token_given(self, headers: dict, scope, method: str) -> tuple[str | None, str | None]:
        """(the token the request gives, the token to keep in a cookie): the start-up URL's
        ``?token=`` on a GET of the page, else a Bearer header or this server's cookie."""
        given = _token_from(headers, scope, self.cookie)
        query_token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(
            "token", [None]
        )[0]
        if query_token is not None and method in SAFE_METHODS and scope["path"] == "/":
            return query_token, query_token
        return given, None

    def _state_change_refusal(self, headers: dict) -> tuple[int, str] | None:
        """(status, detail) refusing a state-changing request that is cross-site, not JSON
        or declared too large; None when it may go on (its body is read next)."""
        origin = headers.get("origin")
        if origin is not None and not self._same_origin(origin):
            return 403, f"cross-site request refused (Origin {origin[:100]!r} is not this server)"
        if headers.get("sec-fetch-site") == "cross-site":
            return 403, "cross-site request refused (Sec-Fetch-Site)"
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return 415, "send a JSON body (Content-Type: application/json)"
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return 400, "bad Content-Length"
            if int(length) > MAX_BODY:
                return 413, f"the request body is {int(length):,} bytes; at most {MAX_BODY:,}"
        return None

    async def _keep_token(self, send_secured, token: str) -> None:
        """303 to the page, the token kept in an HttpOnly cookie (and gone from the URL)."""
        cookie = (f"{self.cookie}={token}; Path=/; HttpOnly; SameSite=Strict").encode(
            "latin-1", "replace"
        )
        await send_secured(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", b"/"),
                    (b"set-cookie", cookie),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send_secured({"type": "http.response.body", "body": b""})

    def _same_origin(self, origin: str) -> bool:
        if origin == "null" or "://" not in origin:
            return False
        scheme, rest = origin.split("://", 1)
        if scheme not in ("http", "https"):
            return False
        host = _host_part(rest)
        port = rest.rsplit(":", 1)[1] if rest.count(":") == 1 or "]:" in rest else ""
        return host in self.hosts and port == str(self.port)


def _with_security_headers(send, path: str):
    """A send that drops the Server header and adds the security headers to every response
    (and no-store to the API's)."""

    async def send_secured(message):
        if message["type"] == "http.response.start":
            h = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
            h += [
                (b"content-security-policy", CSP.encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"x-frame-options", b"DENY"),
                (b"referrer-policy", b"no-referrer"),
                (b"cross-origin-opener-policy", b"same-origin"),
                (b"cross-origin-resource-policy", b"same-origin"),
            ]
            if path.startswith(("/api", "/v1")):
                h.append((b"cache-control", b"no-store"))
            message = {**message, "headers": h}
        await send(message)

    return send_secured


async def _refuse(send_secured, status: int, detail: str, extra: list | None = None) -> None:
    """Answer ``status`` with {"detail": detail} (and ``extra`` headers); no route runs."""
    body = json.dumps({"detail": detail}).encode()
    await send_secured(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(extra or []),
            ],
        }
    )
    await send_secured({"type": "http.response.body", "body": body})


async def _read_body(receive, limit: int) -> bytes | None:
    """The whole request body; None past ``limit`` bytes (or when the client went away)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay_body(body: bytes, receive):
    """A receive that gives the app ``body`` in one message, then the client's own (so a
    streaming response still hears a disconnect)."""
    sent = False

    async def wrapped():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return wrapped


def _token_from(headers: dict, scope, cookie_name: str) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    for part in headers.get("cookie", "").split(";"):
        k, _, v = part.strip().partition("=")
        if k == cookie_name:
            return v
    return None
