"""Local simulators of Jira, GitHub, ServiceNow and PagerDuty for the demo, e2e tests and benchmarks."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

from .evolve import advance as _advance
from .faults import Faults
from .github import GitHubApp
from .jira import JiraApp
from .model import UTC, to_ms
from .pagerduty import PagerDutyApp
from .seed import build_world
from .server import App, BadRequest, Latency, Request, RequestLog, Response, SystemServer, json_response
from .servicenow import ServiceNowApp
from .world import World

SYSTEMS = ("jira", "github", "servicenow", "pagerduty")
__all__ = ["Sandbox", "serve_forever", "SYSTEMS", "World", "Faults", "Latency", "latency_from_env"]


def latency_from_env(environ: Mapping[str, str] = os.environ) -> tuple[float, float]:
    """(ms, jitter_ms) from OKRSYNC_SANDBOX_LATENCY_MS and OKRSYNC_SANDBOX_JITTER_MS (default 0, 0)."""
    try:
        return (float(environ.get("OKRSYNC_SANDBOX_LATENCY_MS") or 0),
                float(environ.get("OKRSYNC_SANDBOX_JITTER_MS") or 0))
    except ValueError as exc:
        raise ValueError(f"OKRSYNC_SANDBOX_LATENCY_MS / _JITTER_MS: expected milliseconds ({exc})") from None


class Sandbox:
    """Four simulated systems over one seeded world.

    >>> with Sandbox(seed=7, scale=500) as sb:
    ...     urls = sb.urls            # {"jira": "http://127.0.0.1:PORT", "github": ..., ...}
    ...     sb.faults.rate_limit(0.3, retry_after=0, system="jira")
    ...     sb.advance()              # new issues, merges, a deploy, incidents
    """

    def __init__(self, seed: int = 42, scale: int = 1000, now: datetime | str | None = None,
                 jira_mode: str = "cloud", require_token: str | Mapping[str, str] | None = None,
                 github_rate_limit: int = 5000, github_rate_window: float = 3600.0, fault_seed: int | None = None,
                 latency_ms: float = 0.0, jitter_ms: float = 0.0):
        if isinstance(now, str):
            now = datetime.fromisoformat(now.replace("Z", "+00:00"))
        self.live = now is None
        self.world = build_world(seed, scale, now or datetime.now(UTC))
        self.world.live = self.live
        self.seed, self.scale, self.jira_mode = seed, scale, jira_mode
        tokens = require_token if isinstance(require_token, Mapping) else {s: require_token for s in SYSTEMS}
        self.faults = Faults(seed if fault_seed is None else fault_seed)
        self.log = RequestLog()
        # every request waits this long before it is answered (the knob for latency-bound benchmarks)
        self.latency = Latency(latency_ms, jitter_ms, seed if fault_seed is None else fault_seed)
        self.apps: dict[str, App] = {
            "jira": JiraApp(self.world, jira_mode, tokens.get("jira")),
            "github": GitHubApp(self.world, tokens.get("github"), github_rate_limit, github_rate_window),
            "servicenow": ServiceNowApp(self.world, tokens.get("servicenow")),
            "pagerduty": PagerDutyApp(self.world, tokens.get("pagerduty")),
        }
        self.servers: dict[str, SystemServer] = {}
        self.webhooks: Any = None  # a webhooks.WebhookSender: advance() announces its changes

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self, ports: int | Mapping[str, int] | None = None, host: str = "127.0.0.1") -> dict[str, str]:
        """Serve the four systems; ports: None (ephemeral), a base port (+0..+3), or {system: port}."""
        if self.servers:
            return self.urls
        for n, system in enumerate(SYSTEMS):
            if ports is None:
                port = 0
            elif isinstance(ports, int):
                port = ports + n if ports else 0
            else:
                port = int(ports.get(system, 0))
            try:
                server = SystemServer(self.apps[system], self.faults, self.log, self._control, host, port,
                                      self.latency)
            except OSError:
                self.stop()
                raise
            self.servers[system] = server
        for server in self.servers.values():
            server.start()
        return self.urls

    def stop(self) -> None:
        stoppers = [threading.Thread(target=server.stop) for server in self.servers.values()]
        for t in stoppers:  # in parallel: each waits for its serve loop's next poll
            t.start()
        for t in stoppers:
            t.join()
        self.servers.clear()

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def urls(self) -> dict[str, str]:
        return {s: srv.url for s, srv in self.servers.items()}

    # -- the world -----------------------------------------------------------------------------------------
    def advance(self, step: timedelta | float | None = None, to: datetime | None = None) -> dict[str, Any]:
        """Apply one deterministic round of changes and move the clock: to `to`, else by `step` (default 1 h
        for an injected now), never behind the wall clock for a live sandbox. Returns what changed."""
        seconds = step.total_seconds() if isinstance(step, timedelta) else step
        now = self.world.now_ms
        if to is not None:
            target = to_ms(to)
        elif self.live:
            target = max(int(time.time() * 1000), now + int((seconds or 0) * 1000))
        else:
            target = now + int((3600 if seconds is None else seconds) * 1000)
        changed = _advance(self.world, target)
        if self.webhooks is not None:
            self.webhooks.advanced(changed)
        return changed

    def send_webhooks(self, url: str, secrets: dict[str, Any] | None = None) -> Any:
        """From now on, signed webhooks announce each change to `url`/webhooks/<system> (okrsync serve)."""
        from .webhooks import WebhookSender

        self.webhooks = WebhookSender(self.world, url, secrets, system_urls=self.urls)
        return self.webhooks

    def tick(self, seconds: float = 3600.0) -> None:
        """Move the clock without changing any item: only what is derived from now moves, such as a repository's
        updated_at embedded in every pull request (GitHub's volatile nested fields)."""
        with self.world.lock:
            self.world.now_ms += int(seconds * 1000)
            self.world.touch()

    @property
    def now(self) -> datetime:
        return self.world.now

    # -- observation ---------------------------------------------------------------------------------------
    def requests(self, system: str | None = None) -> list[dict[str, Any]]:
        """The request log: system, method, path, query, args, status, duration_ms, fault, time."""
        return self.log.entries(system)

    def counts(self) -> dict[str, int]:
        return self.log.counts()

    def reset_log(self) -> None:
        """Clear the request log, its counts and the peaks in flight."""
        self.log.reset()

    def peak_in_flight(self) -> dict[str, int]:
        """Per system: the most requests it had in flight at once since the last reset_log()."""
        return self.log.peaks()

    def set_latency(self, ms: float = 0.0, jitter_ms: float = 0.0) -> None:
        self.latency.set(ms, jitter_ms)

    def github_budget(self, limit: int, window: float | None = None, used: int = 0) -> None:
        """Set GitHub's primary rate budget (X-RateLimit-*); at 0 remaining every call is a 403 until the reset."""
        self.apps["github"].set_budget(limit, window, used)  # type: ignore[attr-defined]

    # -- /_sandbox control endpoints ------------------------------------------------------------------------
    def _control(self, system: str, req: Request) -> Response:
        try:
            return self._control_route(system, req)
        except (BadRequest, ValueError, TypeError) as exc:
            return json_response(400, {"error": str(exc)})

    def _control_route(self, system: str, req: Request) -> Response:
        path, method = req.path.rstrip("/"), req.method
        body = req.json() if req.body else {}
        scope = req.arg("system", system)
        scope = None if scope in ("*", "all") else scope
        routes: dict[tuple[str, str], Callable[[], Response]] = {
            ("GET", "/_sandbox"): lambda: json_response(200, self.info()),
            ("GET", "/_sandbox/log"): lambda: json_response(200, {"requests": self.requests(scope),
                                                                  "counts": self.counts()}),
            ("GET", "/_sandbox/in-flight"): lambda: json_response(200, {"peak": self.peak_in_flight()}),
            ("GET", "/_sandbox/latency"): lambda: json_response(200, self.latency.as_dict()),
            ("POST", "/_sandbox/latency"): lambda: (self.set_latency(float((body or {}).get("ms", 0)),
                                                                     float((body or {}).get("jitter_ms", 0))),
                                                    json_response(200, self.latency.as_dict()))[1],
            ("POST", "/_sandbox/reset-log"): lambda: (self.reset_log(), Response(204))[1],
            ("GET", "/_sandbox/faults"): lambda: json_response(200, {"rules": self.faults.rules(scope)}),
            ("POST", "/_sandbox/faults"): lambda: json_response(201, {"rule": self._add_fault(system, body)}),
            ("DELETE", "/_sandbox/faults"): lambda: (self.faults.clear(scope), Response(204))[1],
            ("POST", "/_sandbox/advance"): lambda: json_response(200, self.advance(
                step=(body or {}).get("seconds"),
                to=datetime.fromisoformat(body["to"].replace("Z", "+00:00")) if (body or {}).get("to") else None)),
            ("POST", "/_sandbox/tick"): lambda: (self.tick(float((body or {}).get("seconds", 3600))),
                                                 Response(204))[1],
            ("GET", "/_sandbox/writes"): lambda: json_response(200, {"writes": self.world.writes(
                None if req.arg("system") in (None, "*", "all") else req.arg("system"))}),
            ("POST", "/_sandbox/rate-limit"): lambda: (self.github_budget(int(body["limit"]), body.get("window")),
                                                       Response(204))[1],
        }
        handler = routes.get((method, path))
        if handler is None:
            return json_response(404, {"error": f"no control endpoint {method} {path}"})
        return handler()

    def _add_fault(self, system: str, body: Any) -> dict[str, Any]:
        spec = dict(body or {})
        kind = spec.pop("kind")
        target = spec.pop("system", system)
        if "statuses" in spec:
            spec["statuses"] = tuple(spec["statuses"])
        return self.faults.add(kind, system=None if target in ("*", "all", None) else target, **spec)

    def info(self) -> dict[str, Any]:
        return {"urls": self.urls, "seed": self.seed, "scale": self.scale, "jira_mode": self.jira_mode,
                "now": self.world.now, "live": self.live, "advances": self.world.advances,
                "periods": self.world.period_bounds(),
                "latency": self.latency.as_dict(), "peak_in_flight": self.peak_in_flight()}


def serve_forever(ports: int | Mapping[str, int] | None = None, scale: int = 1000, seed: int = 42,
                  now: datetime | str | None = None, jira_mode: str = "cloud", host: str = "127.0.0.1",
                  require_token: str | Mapping[str, str] | None = None, out: Callable[[str], None] = print,
                  stop: threading.Event | None = None, webhooks: str | None = None,
                  latency_ms: float | None = None, jitter_ms: float | None = None) -> None:
    """Start the sandbox, print the URLs, and block until Ctrl-C (or `stop` is set); with `webhooks` (a URL
    such as http://127.0.0.1:8080) every change is announced by a signed webhook."""
    started = time.perf_counter()
    env_ms, env_jitter = latency_from_env()
    latency = (env_ms if latency_ms is None else latency_ms, env_jitter if jitter_ms is None else jitter_ms)
    sb = Sandbox(seed=seed, scale=scale, now=now, jira_mode=jira_mode, require_token=require_token,
                 latency_ms=latency[0], jitter_ms=latency[1])
    urls = sb.start(ports, host)
    webhooks = webhooks or os.environ.get("OKRSYNC_SANDBOX_WEBHOOKS")  # `okrsync sandbox --webhooks URL`
    sender = sb.send_webhooks(webhooks) if webhooks else None  # before the URLs are printed and used
    out(f"okrsync sandbox (seed {seed}, scale {scale}, Jira {jira_mode}) ready in "
        f"{time.perf_counter() - started:.1f} s:")
    for system, url in urls.items():
        out(f"  {system:<11} {url}")
    out(f"  control     {urls['jira']}/_sandbox (log, faults, advance, writes, latency, in-flight) on every port")
    if latency[0] or latency[1]:
        jitter = f" + up to {latency[1]:g} ms jitter" if latency[1] else ""
        out(f"  latency     {latency[0]:g} ms per request{jitter}")
    out(("Only the required token is accepted" if require_token else "Any token is accepted") + "; Ctrl-C stops.")
    if webhooks and sender is not None:
        out(f"  webhooks    every change is POSTed, signed, to {webhooks.rstrip('/')}/webhooks/<system> "
            f"(POST {urls['jira']}/_sandbox/advance to make changes)")
        for system in SYSTEMS:
            out(f"  export OKRSYNC_SOURCES__{system.upper()}__WEBHOOK_SECRET={sender.secrets[system]}")
    try:
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        if sender is not None:
            sender.close(2.0)
        sb.stop()
