"""Run the app on uvicorn: bind (safe by default), serve until SIGTERM/SIGINT, drain the sync worker."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import uvicorn

from .app import create_app
from .service import Service

log = logging.getLogger("okrsync.serve")

GRACEFUL_SHUTDOWN = 5.0  # seconds uvicorn gives open requests (and live streams) to end


class BindError(Exception):
    """The address cannot be listened on; str() is the one-line message."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port, see sock.getsockname())."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


@dataclass
class Stopped:
    signum: int | None = None  # the signal that ended the server (None: stopped by code)


class _Server(uvicorn.Server):
    """uvicorn with okrsync's signal handling: SIGTERM/SIGINT end the serve loop and are not re-raised after
    (uvicorn re-raises them, which would turn a clean SIGTERM into exit 143)."""

    def __init__(self, config: uvicorn.Config, stopped: Stopped, on_signal: Callable[[], None]):
        super().__init__(config)
        self.stopped = stopped
        self.on_signal = on_signal

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.should_exit and signum == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: do not wait for open connections
        self.stopped.signum = self.stopped.signum or signum
        self.should_exit = True
        self.on_signal()


class ServeProcess:
    """The service on a bound socket. run() blocks until a signal (or stop()); then the worker drains."""

    def __init__(self, service: Service, sock: socket.socket):
        self.service = service
        self.sock = sock
        self.stopped = Stopped()
        config = uvicorn.Config(create_app(service), lifespan="off", log_level="warning", access_log=False,
                                proxy_headers=False, server_header=False,
                                timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN))
        self.server = _Server(config, self.stopped, service.closing.set)

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    def run(self) -> Stopped:
        self.service.worker.start()
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.service.closing.set()
            drained = self.service.worker.drain(self.service.options.drain_timeout)
            if not drained:
                log.warning("the sync worker did not stop in time")
            self.sock.close()
        return self.stopped

    def stop(self) -> None:
        """End run() from another thread (tests, embedding)."""
        self.service.closing.set()
        self.server.should_exit = True
