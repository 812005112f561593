"""A tiny threaded HTTP/1.1 server per simulated system: routing, JSON helpers, request log and fault application."""

from __future__ import annotations

import json
import logging
import random
import re
import socket
import sys
import threading
import time
import traceback
from collections import Counter, deque
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, parse_qsl, unquote

from .faults import Decision, Faults

log = logging.getLogger("okrsync.sandbox")


class Request:
    __slots__ = ("method", "path", "raw_query", "query", "pairs", "headers", "body", "params", "base_url")

    def __init__(self, method: str, path: str, raw_query: str, headers: Any, body: bytes, base_url: str):
        self.method, self.path, self.raw_query, self.headers, self.body = method, path, raw_query, headers, body
        self.query: dict[str, list[str]] = parse_qs(raw_query, keep_blank_values=True)
        self.pairs: list[tuple[str, str]] = parse_qsl(raw_query, keep_blank_values=True)
        self.params: dict[str, str] = {}
        self.base_url = base_url

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def json(self) -> Any:
        if not self.body:
            return None
        return json.loads(self.body.decode("utf-8"))


class Response:
    __slots__ = ("status", "body", "headers")

    def __init__(self, status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None):
        self.status, self.body, self.headers = status, body, headers or []

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)


def _default(o: Any) -> Any:
    if isinstance(o, (datetime, date)):
        return o.isoformat()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=_default).encode("utf-8")


JSON = "application/json;charset=UTF-8"


def json_response(status: int, obj: Any, headers: list[tuple[str, str]] | None = None,
                  content_type: str = JSON) -> Response:
    return Response(status, dumps(obj), [("Content-Type", content_type)] + (headers or []))


def html_response(status: int, title: str) -> Response:
    body = f"<html><head><title>{status} {title}</title></head><body><h1>{status} {title}</h1></body></html>"
    return Response(status, body.encode(), [("Content-Type", "text/html")])


class BadRequest(Exception):
    """Raised by handlers; the app turns it into the system's error shape."""

    def __init__(self, message: str, status: int = 400, **extra: Any):
        super().__init__(message)
        self.message, self.status, self.extra = message, status, extra


Handler = Callable[[Request], Response]


class Router:
    """Patterns like /repos/{owner}/{repo}/issues/{number}; a {name} matches one path segment."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        rx = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method, re.compile(f"^{rx}$"), handler))

    def match(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        """(handler, params, path_known): path_known is True when only the method is wrong."""
        known = False
        for m, rx, handler in self._routes:
            found = rx.match(path)
            if found:
                if m == method:
                    return handler, {k: unquote(v) for k, v in found.groupdict().items()}, True
                known = True
        return None, {}, known


class App:
    """One simulated system. Subclasses register routes and the system's own error shapes."""

    system = "app"

    def __init__(self) -> None:
        self.router = Router()
        self.base_url = ""

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.router.add(method, pattern, handler)

    # hooks with defaults -------------------------------------------------------------------------------
    def error(self, status: int, message: str, **extra: Any) -> Response:
        return json_response(status, {"message": message})

    def authenticate(self, req: Request) -> Response | None:
        return None

    def before(self, req: Request) -> Response | None:
        return None

    def after(self, req: Request, resp: Response) -> Response:
        return resp

    def rate_limited(self, retry_after: float) -> Response:
        return json_response(429, {"message": "Too many requests"}, [("Retry-After", _secs(retry_after))])

    def server_error(self, status: int) -> Response:
        if status in (502, 503, 504):  # what a load balancer in front of the API sends
            reason = {502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "Gateway Timeout")
            return html_response(status, reason)
        return self.error(status, "Internal server error")

    def handle(self, req: Request) -> Response:
        denied = self.authenticate(req)
        if denied is not None:
            return denied
        early = self.before(req)
        if early is not None:
            return early
        handler, params, known = self.router.match(req.method, req.path)
        if handler is None:
            resp = self.error(405 if known else 404, "Method Not Allowed" if known else "Not Found")
        else:
            req.params = params
            try:
                resp = handler(req)
            except BadRequest as exc:
                resp = self.error(exc.status, exc.message, **exc.extra)
            except (ValueError, UnicodeDecodeError) as exc:
                resp = self.error(400, f"Bad request: {exc}")
        return self.after(req, resp)


def _secs(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class Latency:
    """Simulated network and server time per request: `ms` fixed, plus up to `jitter_ms` more (uniform, seeded).

    Real APIs answer a page in 150-600 ms; on localhost the sandbox answers in ~3 ms, which hides what waiting costs."""

    def __init__(self, ms: float = 0.0, jitter_ms: float = 0.0, seed: int = 0):
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.set(ms, jitter_ms)

    def set(self, ms: float = 0.0, jitter_ms: float = 0.0) -> None:
        if ms < 0 or jitter_ms < 0:
            raise ValueError("latency and jitter are milliseconds >= 0")
        self.ms, self.jitter_ms = float(ms), float(jitter_ms)

    def seconds(self) -> float:
        if not self.jitter_ms:
            return self.ms / 1000
        with self._lock:
            return (self.ms + self._rng.uniform(0, self.jitter_ms)) / 1000

    def as_dict(self) -> dict[str, float]:
        return {"ms": self.ms, "jitter_ms": self.jitter_ms}


class RequestLog:
    """Every simulated request (not the /_sandbox control calls): system, method, path, query, status, duration;
    and per system the requests in flight now and at most (the peak a client's concurrency setting must bound)."""

    def __init__(self, maxlen: int = 200_000):
        self._entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()
        self._peak: Counter[str] = Counter()

    def enter(self, system: str) -> None:
        with self._lock:
            self._in_flight[system] += 1
            self._peak[system] = max(self._peak[system], self._in_flight[system])

    def leave(self, system: str) -> None:
        with self._lock:
            self._in_flight[system] -= 1

    def peaks(self) -> dict[str, int]:
        """The most requests each system had in flight at once since the last reset."""
        with self._lock:
            return dict(self._peak)

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append(entry)
            self._counts[entry["system"]] += 1

    def entries(self, system: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._entries if system is None or e["system"] == system]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
            self._counts.clear()
            self._peak = Counter(self._in_flight)


Control = Callable[[str, Request], Response]


class SystemServer:
    """A ThreadingHTTPServer on 127.0.0.1 serving one App, applying faults and logging requests."""

    def __init__(self, app: App, faults: Faults, request_log: RequestLog, control: Control,
                 host: str = "127.0.0.1", port: int = 0, latency: Latency | None = None):
        self.app, self.faults, self.request_log, self.control = app, faults, request_log, control
        self.latency = latency or Latency()
        self.httpd = _Server((host, port), _make_handler(self))
        self.host, self.port = self.httpd.server_address[0], self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        app.base_url = self.url
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sandbox-{self.app.system}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def serve(self, h: BaseHTTPRequestHandler) -> None:
        started = time.perf_counter()
        path, _, raw_query = h.path.partition("?")
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        req = Request(h.command, path, raw_query, h.headers, body, self.url)
        if path == "/_sandbox" or path.startswith("/_sandbox/"):
            _send(h, self.control(self.app.system, req))
            return
        # in flight from here until the answer is ready: counted out before it is sent, so a client that sends its
        # next request as soon as it has this answer is never counted twice (the peak bounds the client's limiter)
        system, left = self.app.system, []

        def leave() -> None:
            if not left:
                left.append(True)
                self.request_log.leave(system)

        self.request_log.enter(system)
        try:
            self._serve(h, req, started, leave)
        finally:
            leave()

    def _serve(self, h: BaseHTTPRequestHandler, req: Request, started: float, leave: Callable[[], None]) -> None:
        decision = self.faults.decide(self.app.system, req.method, req.path)
        # the latency is the time a request costs in all (a real API's 150-600 ms include its own work): the
        # sandbox's time to build the answer is part of it, not added to it; a fault's delay comes on top
        answer_by = started + decision.delay + self.latency.seconds()
        if decision.delay:
            time.sleep(decision.delay)
        if decision.kind == "drop":
            _sleep_until(answer_by)
            self._log(req, 0, started, decision)
            leave()
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        resp = self._answer(req, decision)
        _sleep_until(answer_by)
        if decision.malformed and resp.status == 200 and resp.body:
            resp.body = resp.body[: max(1, len(resp.body) // 2)]  # a truncated page: not valid JSON
        self._log(req, resp.status, started, decision)
        leave()
        _send(h, resp, head=req.method == "HEAD")

    def _answer(self, req: Request, decision: Decision) -> Response:
        if decision.kind == "rate_limit":
            return self.app.rate_limited(decision.retry_after)
        if decision.kind == "error":
            return self.app.server_error(decision.status)
        try:
            return self.app.handle(req)
        except Exception:  # a simulator bug must not look like a network failure
            log.error("sandbox %s: %s %s failed:\n%s", self.app.system, req.method, req.path, traceback.format_exc())
            return self.app.error(500, "Internal server error (sandbox)")

    def _log(self, req: Request, status: int, started: float, decision: Decision) -> None:
        args: dict[str, Any] = {k: (v[0] if len(v) == 1 else v) for k, v in req.query.items()}
        self.request_log.add({
            "system": self.app.system, "method": req.method, "path": req.path, "query": req.raw_query,
            "args": args, "status": status, "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "fault": decision.label, "time": time.time(),
            # what a POST asked for (a search's JQL and fields), cut at 4 KB
            "body": req.body[:LOGGED_BODY].decode("utf-8", "replace") if req.body else None,
        })


LOGGED_BODY = 4096


def _sleep_until(deadline: float) -> None:
    left = deadline - time.perf_counter()
    if left > 0:
        time.sleep(left)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # the client went away (or we dropped it on purpose)
        super().handle_error(request, client_address)


def _make_handler(server: SystemServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections like with the real APIs
        server_version = "sandbox"
        sys_version = ""
        wbufsize = 1 << 16  # one write per response; handle_one_request flushes it

        def setup(self) -> None:
            super().setup()
            # without this, Nagle + delayed ACK add ~40 ms to every keep-alive request
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            server.serve(self)

        do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet; see RequestLog
            pass

    return Handler


def _send(h: BaseHTTPRequestHandler, resp: Response, head: bool = False) -> None:
    try:
        h.send_response(resp.status)
        for k, v in resp.headers:
            h.send_header(k, v)
        if resp.status not in (204, 304):
            h.send_header("Content-Length", str(len(resp.body)))
        h.end_headers()
        if resp.body and not head and resp.status not in (204, 304):
            h.wfile.write(resp.body)
    except (BrokenPipeError, ConnectionResetError):
        h.close_connection = True
