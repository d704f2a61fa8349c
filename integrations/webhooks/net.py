"""POSTs to webhook endpoints, with no server-side request forgery.

A webhook URL is typed by staff, but where it leads is decided by whoever
answers its DNS: it must not become a way into the portal's own network
(the cloud's metadata service at 169.254.169.254, a database on 10.x, the
portal itself on 127.0.0.1). So:

- the host is resolved, and every address it resolves to is checked: in
  production loopback, private, link-local, multicast, reserved and
  unspecified addresses are refused unless WEBHOOK_ALLOWED_HOSTS names the
  host or a network holding the address; in development (DEBUG) only
  loopback and the allow-list are contacted at all;
- the connection goes to the address that was checked (never resolved again
  by the HTTP client: no DNS rebinding between check and connect);
- redirects are not followed (http.client never does), timeouts are short,
  and no more than RESPONSE_READ bytes of an answer are read.

The URL is checked when staff register it (a form error) and again before
every delivery.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

# What is read of an answer at most, and what of it is kept for staff to see.
RESPONSE_READ = 64 * 1024
EXCERPT_CHARS = 1000

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeURL(ValueError):
    """A URL that may not be contacted; the message is for staff."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: IPAddress


def _allow_list() -> tuple[set[str], list]:
    names, networks = set(), []
    for entry in settings.WEBHOOK_ALLOWED_HOSTS:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.lower().rstrip("."))
    return names, networks


def address_refusal(address: IPAddress, *, host: str) -> str:
    """Why this address may not be contacted for this host, or ""."""
    names, networks = _allow_list()
    if host.lower().rstrip(".") in names or any(address in net for net in networks):
        return ""
    mapped = getattr(address, "ipv4_mapped", None)
    checked = mapped or address
    if settings.DEBUG:
        if checked.is_loopback:
            return ""
        if host.strip("[]") == str(address):
            return _(
                "%(address)s is not a loopback address: in development only loopback "
                "addresses and WEBHOOK_ALLOWED_HOSTS are contacted."
            ) % {"address": address}
        return _(
            "%(host)s leads to %(address)s, not a loopback address: in development only "
            "loopback addresses and WEBHOOK_ALLOWED_HOSTS are contacted."
        ) % {"host": host, "address": address}
    if (
        checked.is_loopback
        or checked.is_private
        or checked.is_link_local
        or checked.is_multicast
        or checked.is_reserved
        or checked.is_unspecified
        or not checked.is_global
    ):
        return _(
            "%(host)s leads to %(address)s, a private, loopback or link-local address: "
            "refused unless WEBHOOK_ALLOWED_HOSTS allows it."
        ) % {"host": host, "address": address}
    return ""


def _split(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(_("This URL cannot be read: %(error)s") % {"error": exc}) from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL(_("A webhook URL starts with https:// (or http://)."))
    if not parts.hostname:
        raise UnsafeURL(_("A webhook URL names a host."))
    if parts.username or parts.password:
        raise UnsafeURL(_("Put no user name or password in a webhook URL: it is signed instead."))
    port = port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return parts.scheme, parts.hostname, port, path


def resolve(url: str) -> Target:
    """Resolve and check the URL's host; the Target holds the address to
    connect to. Every address the name resolves to must pass, or one that does
    not could be chosen by the next resolution."""
    scheme, host, port, path = _split(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURL(_("%(host)s could not be resolved.") % {"host": host}) from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeURL(_("%(host)s could not be resolved.") % {"host": host})
    for address in addresses:
        refusal = address_refusal(address, host=host)
        if refusal:
            raise UnsafeURL(refusal)
    return Target(scheme=scheme, host=host, port=port, path=path, address=addresses[0])


def check_url(url: str) -> None:
    """Raise UnsafeURL with a message for staff when `url` may not be contacted."""
    resolve(url)


class _Pinned(http.client.HTTPConnection):
    """Connects to the checked address, while Host names the host."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = str(target.address)

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedTLS(http.client.HTTPSConnection):
    """The same over TLS: the certificate is checked against the host name."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
        self._address = str(target.address)

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


@dataclass(frozen=True)
class Answer:
    status: int | None
    excerpt: str
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Client:
    """POSTs for one batch: each host resolved and checked once, and its
    connection kept open between POSTs when the receiver allows it."""

    # After this many POSTs in a row to one host that got no answer at all (it
    # is down, or times out), the rest of the batch's POSTs to it fail at once,
    # to be retried with the others, instead of each waiting for its timeout.
    UNREACHABLE_AFTER = 3

    def __init__(self) -> None:
        self._targets: dict[tuple[str, str, int], Target | UnsafeURL] = {}
        self._connections: dict[tuple[str, str, int], http.client.HTTPConnection] = {}
        self._unanswered: dict[tuple[str, str, int], int] = {}

    def _target(self, url: str) -> tuple[tuple[str, str, int], Target]:
        scheme, host, port, path = _split(url)
        key = (scheme, host.lower(), port)
        if key not in self._targets:
            try:
                self._targets[key] = resolve(url)
            except UnsafeURL as exc:
                self._targets[key] = exc
        found = self._targets[key]
        if isinstance(found, UnsafeURL):
            raise found
        return key, Target(found.scheme, found.host, found.port, path, found.address)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        started = time.monotonic()
        try:
            key, target = self._target(url)
        except UnsafeURL as exc:
            return Answer(None, "", str(exc), 0)
        if self._unanswered.get(key, 0) >= self.UNREACHABLE_AFTER:
            return Answer(None, "", "Not tried: the host did not answer the last tries.", 0)
        answer = self._post(key, target, body, headers, started)
        self._unanswered[key] = 0 if answer.status is not None else self._unanswered.get(key, 0) + 1
        return answer

    def _post(self, key, target: Target, body: bytes, headers: dict, started: float) -> Answer:
        timeout = settings.WEBHOOK_TIMEOUT_SECONDS
        reused = key in self._connections
        for _try in range(2):
            connection = self._connections.get(key)
            if connection is None:
                kind = _PinnedTLS if target.scheme == "https" else _Pinned
                connection = self._connections[key] = kind(target, timeout)
            try:
                connection.request("POST", target.path, body=body, headers=headers)
                response = connection.getresponse()
                data = _read_capped(response, deadline=started + timeout)
            except (OSError, http.client.HTTPException) as exc:
                self._drop(key)
                if (
                    reused
                    and _try == 0
                    and isinstance(
                        exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
                    )
                ):
                    reused = False  # the receiver closed a kept connection: once more, fresh
                    continue
                return Answer(None, "", f"{type(exc).__name__}: {exc}", _ms(started))
            if response.length == 0:
                response.close()  # read to its end: the connection can carry the next
            if response.will_close or not response.isclosed():
                self._drop(key)  # closed by the receiver, or an answer left unread
            excerpt = data.decode("utf-8", errors="replace")[:EXCERPT_CHARS]
            return Answer(response.status, excerpt, "", _ms(started))
        return Answer(None, "", "connection lost", _ms(started))

    def _drop(self, key) -> None:
        connection = self._connections.pop(key, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        for key in list(self._connections):
            self._drop(key)


def _read_capped(response: http.client.HTTPResponse, *, deadline: float) -> bytes:
    """Up to RESPONSE_READ bytes, within the deadline (a receiver that drips
    its answer a byte at a time does not hold the worker)."""
    chunks, size = [], 0
    while size < RESPONSE_READ:
        if time.monotonic() > deadline:
            raise TimeoutError("the answer took too long")
        chunk = response.read1(min(8192, RESPONSE_READ - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
