"""Fetching a remote image (--allow-remote-images) without letting a request reach the server's own network.

A request could otherwise name http://127.0.0.1:..., http://169.254.169.254/ (cloud metadata), a LAN device, or a
name that resolves to one of them (server-side request forgery). So each URL's host is resolved here, every address
it resolves to is checked (loopback, private, link-local, unique-local, shared, unspecified, multicast, reserved,
and IPv4 addresses inside IPv6 ones: ::ffff:a.b.c.d, 6to4, NAT64), the connection goes to the checked address
itself (a name that resolves differently a second time cannot slip through), and every redirect is checked the same
way. Spellings such as http://2130706433/ or http://0177.0.0.1/ resolve to 127.0.0.1 and are refused like it.
`allow_private` (--allow-private-image-hosts) lifts the address check, for images on the LAN. Proxy settings of
the environment are not used: the connection is always direct. The whole fetch, redirects included, must finish
within remote_image_timeout_s and stay under max_image_bytes.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import time
from collections.abc import Callable
from functools import partial
from urllib.parse import urljoin, urlsplit

from lfm_edge import __version__
from lfm_edge.errors import RequestError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CHUNK = 64 * 1024


def address_problem(ip: IPAddress) -> str | None:
    """Why the server must not connect to `ip` on a request's behalf, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
                                                      if ip in _NAT64 else None)  # fmt: skip
        if embedded is not None:
            return address_problem(embedded)
        if ip.teredo is not None:
            return "a Teredo tunnel address"
    checks = (
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address (cloud metadata lives there)"),
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
    )
    return next((why for bad, why in checks if bad), None)


def resolve(host: str, port: int) -> list[IPAddress]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever the host name resolves to now."""

    def __init__(self, host: str, port: int, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self.address), self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((str(self.address), self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _error(message: str, param: str, code: str = "invalid_image_url", status: int = 400) -> RequestError:
    return RequestError(message, status, code, param)


def _checked_address(host: str, port: int, allow_private: bool, param: str) -> IPAddress:
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise _error(f"could not resolve the image URL's host {host[:80]!r}: {exc}", param) from None
    for address in addresses:
        problem = None if allow_private else address_problem(address)
        if problem is not None:
            raise _error(
                f"the image URL's host {host[:80]!r} resolves to {address}, {problem}; this server fetches images "
                "from public addresses only (start it with --allow-private-image-hosts to allow others)",
                param,
                "image_host_forbidden",
            )
    if not addresses:
        raise _error(f"the image URL's host {host[:80]!r} resolves to no address", param)
    return addresses[0]


def fetch_image(url: str, max_bytes: int, timeout_s: float, allow_private: bool, param: str) -> bytes:
    """The body of `url` (http or https), following up to 5 redirects, each destination checked."""
    deadline = time.monotonic() + timeout_s
    for _ in range(_MAX_REDIRECTS + 1):
        checked = partial(_checked_address, allow_private=allow_private, param=param)
        status, location, body = _get(url, deadline, checked, max_bytes, param)
        if status in _REDIRECTS and location:
            url = urljoin(url, location)
            continue
        if status != 200:
            raise _error(f"fetching the image URL answered HTTP {status}", param)
        return body
    raise _error(f"the image URL redirected more than {_MAX_REDIRECTS} times", param)


def _get(url: str, deadline: float, address_of: Callable[[str, int], IPAddress], max_bytes: int,
         param: str) -> tuple[int, str | None, bytes]:  # fmt: skip
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise _error(f"image URL {url[:80]!r} is not an http(s) URL with a host", param)
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise _error(f"image URL {url[:80]!r} has an invalid port", param) from None
    address = address_of(parts.hostname, port)
    kind = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
    connection = kind(parts.hostname, port, address, timeout=max(deadline - time.monotonic(), 0.01))
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", path, headers={"User-Agent": f"lfm-edge/{__version__}", "Accept": "image/*"})
        response = connection.getresponse()
        if response.status in _REDIRECTS:
            return response.status, response.getheader("Location"), b""
        return response.status, None, _read_body(response, deadline, max_bytes, param)
    except (OSError, http.client.HTTPException) as exc:
        raise _error(f"could not fetch the image URL: {type(exc).__name__}: {str(exc)[:120]}", param) from None
    finally:
        connection.close()


def _read_body(response: http.client.HTTPResponse, deadline: float, max_bytes: int, param: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read1(_CHUNK) if hasattr(response, "read1") else response.read(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise _error(f"the image is over the limit of {max_bytes} bytes", param, "image_too_large", 413)
        if time.monotonic() > deadline:
            raise _error("the image URL did not finish sending in time", param, "image_fetch_timeout")
        chunks.append(chunk)
    return b"".join(chunks)
