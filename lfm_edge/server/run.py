"""Running the app: `serve` (blocks until Ctrl-C) and `start_in_thread` (tests, apps embedding the server).

The listening socket is bound here, before uvicorn starts, so port 0 picks a free port and its number is known.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from dataclasses import dataclass

import uvicorn

from lfm_edge.errors import ConfigError
from lfm_edge.model import Model
from lfm_edge.server.app import create_app
from lfm_edge.server.headers import with_header_timeout
from lfm_edge.server.options import ServerOptions

log = logging.getLogger(__name__)

MAX_LOG_CHARS = 2000


class BoundedRecords(logging.Filter):
    """Cuts a log record's text to MAX_LOG_CHARS: what a request sends (a grammar, an image, a prompt) must not
    make one log line grow with it."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if len(text) > MAX_LOG_CHARS:
            record.msg, record.args = f"{text[:MAX_LOG_CHARS]}... ({len(text) - MAX_LOG_CHARS} more characters)", ()
        return True


def bound_logs() -> None:
    """On the loggers that can carry request content: llama.cpp's (routed, see native/logs.py) and the server's."""
    for name in ("lfm_edge.llama_cpp", "lfm_edge.server.problems", "lfm_edge.server.app", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, BoundedRecords) for f in logger.filters):
            logger.addFilter(BoundedRecords())


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # connections made from now on wait for uvicorn instead of being refused
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port or --host") from None
    return sock


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _server(model: Model, options: ServerOptions, verbose: bool) -> tuple[uvicorn.Server, socket.socket]:
    if not is_loopback(options.host) and options.api_key is None:
        log.warning(
            "listening on %s without --api-key: anyone who can reach this machine can use the model", options.host
        )
    bound_logs()
    config = uvicorn.Config(
        create_app(model, options),
        http=with_header_timeout(options.limits.header_timeout_s),
        log_level="info" if verbose else "warning",
        access_log=verbose,
        limit_concurrency=4 * options.limits.max_requests,  # connections; the guard answers requests in JSON
        timeout_keep_alive=5,
        server_header=False,
        proxy_headers=False,
    )
    return uvicorn.Server(config), _bind(options.host, options.port)


def serve(model: Model, options: ServerOptions, verbose: bool = False) -> None:
    """Serves until SIGINT/SIGTERM (uvicorn finishes the requests in flight first), then returns."""
    server, sock = _server(model, options, verbose)
    log.warning("lfm-edge serves %s at %s/v1 (Ctrl-C stops)", options.model_id, url_of(sock))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the signal it handled once it has shut down
        pass
    finally:
        sock.close()


@dataclass
class RunningServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_in_thread(model: Model, options: ServerOptions, verbose: bool = False) -> RunningServer:
    """Starts serving in a daemon thread and returns once it accepts connections; `close()` stops it."""
    server, sock = _server(model, options, verbose)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="lfm-edge-server")
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.01)
    if not server.started:
        raise RuntimeError("the server did not start; see the log")
    return RunningServer(url_of(sock), server, thread)
