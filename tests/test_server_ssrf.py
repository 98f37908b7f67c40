"""Remote images cannot reach the server's own network (issue N item 3): loopback, private, link-local and
metadata addresses are refused however they are spelled or reached (a redirect, a name resolving to them), unless
the server runs with --allow-private-image-hosts. Real HTTP servers on loopback stand in for the targets."""

from __future__ import annotations

import http.server
import ipaddress
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from lfm_edge.errors import RequestError
from lfm_edge.server import fetch
from lfm_edge.server.fetch import address_problem, fetch_image
from tests.hostile_inputs import image_chat
from tests.server_process import assert_error, call, serve_process

IMAGES = Path(__file__).parent / "images"
PNG = (IMAGES / "photo_64x64.png").read_bytes()


class _Site(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.split("=", 1)[1])
            self.end_headers()
            return
        super().do_GET()


def _serve(host: str) -> tuple[http.server.ThreadingHTTPServer, int]:
    server = http.server.ThreadingHTTPServer((host, 0), partial(_Site, directory=str(IMAGES)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


@pytest.fixture(scope="module")
def site_port() -> Iterator[int]:
    """An image site on 127.0.0.1 (what a hostile request would aim at)."""
    server, port = _serve("127.0.0.1")
    yield port
    server.shutdown()


def _fetch(url: str, allow_private: bool = False) -> bytes:
    return fetch_image(url, 2**20, 10.0, allow_private, "messages[0].content[0]")


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "2130706433", "0177.0.0.1", "0x7f.1", "127.1", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0"],
)
def test_loopback_in_any_spelling_is_refused(site_port: int, host: str) -> None:
    with pytest.raises(RequestError) as raised:
        _fetch(f"http://{host}:{site_port}/photo_64x64.png")
    assert raised.value.code == "image_host_forbidden" and raised.value.status == 400
    assert "--allow-private-image-hosts" in str(raised.value)


def test_the_opt_in_fetches_from_loopback(site_port: int) -> None:
    assert _fetch(f"http://127.0.0.1:{site_port}/photo_64x64.png", allow_private=True) == PNG
    assert _fetch(f"http://2130706433:{site_port}/photo_64x64.png", allow_private=True) == PNG


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("169.254.169.254", False),  # cloud metadata
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("fe80::1", False),
        ("fd00:ec2::254", False),  # AWS metadata over IPv6
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("ff02::1", False),
        ("::", False),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
    ],
)
def test_address_policy(address: str, public: bool) -> None:
    assert (address_problem(ipaddress.ip_address(address)) is None) is public


@pytest.fixture
def second_loopback_is_public(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A site on 127.0.0.2 that the policy treats as public, standing in for a public host that redirects."""
    real: Callable[[fetch.IPAddress], str | None] = fetch.address_problem
    monkeypatch.setattr(fetch, "address_problem", lambda ip: None if str(ip) == "127.0.0.2" else real(ip))
    server, port = _serve("127.0.0.2")
    yield port
    server.shutdown()


def test_a_redirect_to_loopback_is_refused(second_loopback_is_public: int, site_port: int) -> None:
    public = f"http://127.0.0.2:{second_loopback_is_public}"
    assert _fetch(f"{public}/photo_64x64.png") == PNG  # the stand-in public site itself is fetched
    for target in (f"http://127.0.0.1:{site_port}/photo_64x64.png", f"http://localhost:{site_port}/photo_64x64.png"):
        with pytest.raises(RequestError) as raised:
            _fetch(f"{public}/redirect?to={target}")
        assert raised.value.code == "image_host_forbidden"


def test_the_connection_goes_to_the_checked_address(second_loopback_is_public: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A name is resolved once: the fetch connects to the address that was checked, not to a fresh lookup."""
    lookups: list[str] = []

    def resolve_once(host: str, port: int) -> list[fetch.IPAddress]:
        lookups.append(host)
        return [ipaddress.ip_address("127.0.0.2")]

    monkeypatch.setattr(fetch, "resolve", resolve_once)
    assert _fetch(f"http://images.invalid:{second_loopback_is_public}/photo_64x64.png") == PNG
    assert lookups == ["images.invalid"]


def test_the_server_refuses_loopback_images_unless_opted_in(converted: Callable[..., tuple[Path, Path]],
                                                            site_port: int) -> None:  # fmt: skip
    model = converted("official-2.5", "f16")[0]
    url = f"http://localhost:{site_port}/photo_64x64.png"
    with serve_process(model, "--allow-remote-images") as server:
        error = assert_error(*call(server.address, "/v1/chat/completions", image_chat(url)), 400,
                             "image_host_forbidden")  # fmt: skip
        assert error["param"] == "messages[0].content[0]"
    with serve_process(model, "--allow-remote-images", "--allow-private-image-hosts") as server:
        status, body = call(server.address, "/v1/chat/completions", image_chat(url))
        assert status == 200, body
