"""The one HTTP retry layer (tenacity): timeouts, Retry-After and rate-limit resets, redaction, counting."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from okrsync.domain import VERSION as __version__

from .base import AuthError, ConnectorOptions, NotFoundError, SourceError, redact
from .errortext import body_of, error_text
from .neterrors import not_sent, short_reason, speaks_no_tls, unresolvable_host

log = logging.getLogger("okrsync.http")

IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}
MAX_BACKOFF = 60.0


class RetryableHTTP(Exception):
    """A response or failure worth another attempt; carries how long the server asked us to wait."""

    def __init__(self, reason: str, wait: float | None = None, response: requests.Response | None = None):
        super().__init__(reason)
        self.reason = reason
        self.wait = wait
        self.response = response


class Forbidden(AuthError):
    """HTTP 403 that is no rate limit: the credentials work but lack a permission. .detail: the server's message."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.status = 403
        self.detail = detail


class HTTPStatusError(SourceError):
    def __init__(self, message: str, status: int, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After: seconds or an HTTP date -> seconds to wait."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def rate_limit_wait(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds until a rate-limit window resets, from the headers the four APIs send.

    GitHub/ServiceNow: X-RateLimit-Reset = epoch seconds; Jira: X-RateLimit-Reset = ISO time;
    PagerDuty: ratelimit-reset = seconds to wait.
    """
    h = {k.lower(): v for k, v in headers.items()}
    ra = parse_retry_after(h.get("retry-after"), now)
    if ra is not None:
        return ra
    reset = h.get("x-ratelimit-reset")
    if reset:
        reset = reset.strip()
        try:
            n = float(reset)
            # epoch seconds (GitHub) vs a small number of seconds
            return max(0.0, n - now) if n > 1e9 else max(0.0, n)
        except ValueError:
            try:
                when = datetime.fromisoformat(reset.replace("Z", "+00:00"))
                if when.tzinfo is None:
                    when = when.replace(tzinfo=timezone.utc)
                return max(0.0, when.timestamp() - now)
            except ValueError:
                pass
    reset = h.get("ratelimit-reset")
    if reset:
        try:
            return max(0.0, float(reset))
        except ValueError:
            return None
    return None


SECONDARY_WAIT = 60.0  # GitHub: without retry-after, "wait for at least one minute", then back off exponentially


@dataclass(frozen=True)
class RateLimitWait:
    seconds: float
    kind: str  # retry_after | reset | secondary


def rate_limit_decision(resp: requests.Response, now: float, secondary_hits: int = 0) -> RateLimitWait | None:
    """Is this 403/429 a rate limit, and how long to wait? None: not a rate limit (a 403 is then a permission error).

    The order GitHub documents ("Best practices for using the REST API", "Rate limits for the REST API"):
    1. retry-after present: wait that many seconds;
    2. x-ratelimit-remaining 0: wait until x-ratelimit-reset (it is on every response, usually an hour away,
       so it is never the wait for anything else);
    3. otherwise (a secondary limit): at least one minute, doubling on each consecutive one.
    Jira Data Center's rate limiter sends retry-after on every response, 0 while tokens are left (Atlassian
    "Adjusting your code for rate limiting"): a 403 with retry-after 0 is a permission error, not a limit.
    """
    h = _lower(resp.headers)
    status = resp.status_code
    retry_after = parse_retry_after(h.get("retry-after"), now)
    if retry_after is not None and (retry_after > 0 or status == 429):
        return RateLimitWait(retry_after, "retry_after")
    if h.get("x-ratelimit-remaining", "").strip() == "0":
        wait = rate_limit_wait({k: v for k, v in h.items() if k != "retry-after"}, now)
        if wait is not None:
            return RateLimitWait(wait, "reset")
    if status == 429 and h.get("ratelimit-reset"):  # PagerDuty: seconds to wait
        wait = rate_limit_wait({"ratelimit-reset": h["ratelimit-reset"]}, now)
        if wait is not None:
            return RateLimitWait(wait, "reset")
    if status == 429 or _says_rate_limit(resp):
        return RateLimitWait(SECONDARY_WAIT * 2 ** min(secondary_hits, 10), "secondary")
    return None


def backoff(attempt: int, base: float = 1.0, cap: float = MAX_BACKOFF, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: uniform in [d/2, d], d = min(cap, base * 2^(attempt-1))."""
    d: float = min(cap, base * (2 ** max(0, attempt - 1)))
    r: float = (rng or random).random()
    return d * (0.5 + 0.5 * r)


def http_options(config: Any, options: Any = None) -> "HttpOptions":
    """Timeouts, attempts and CA bundle of a source's settings (a global CA bundle as the fallback)."""
    return HttpOptions(connect_timeout=config.connect_timeout, read_timeout=config.timeout,
                       max_attempts=config.max_attempts, backoff_base=getattr(config, "retry_backoff", 1.0),
                       ca_bundle=config.ca_bundle or getattr(options, "ca_bundle", None),
                       concurrency=getattr(config, "concurrency", 4))


@dataclass
class HttpOptions:
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_attempts: int = 6
    backoff_base: float = 1.0
    max_wait: float = 3600.0  # longest single wait we accept from a rate-limit header
    ca_bundle: str | None = None
    concurrency: int = 4  # requests in flight at most (one client per source: its streams share the limit)


class HttpClient:
    """requests.Session with retries turned off in the adapter; tenacity is the only retry layer."""

    def __init__(
        self,
        source: str,
        base_url: str,
        *,
        options: HttpOptions | None = None,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        auth_hint: str = "",
        secrets: list[str] | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        on_wait: Callable[[str, float], None] | None = None,
        session: requests.Session | None = None,
    ):
        self.source = source
        self.base_url = base_url.rstrip("/") + "/"
        self.options = options or HttpOptions()
        self.auth_hint = auth_hint
        self.secrets = [s for s in (secrets or []) if s and len(s) >= 4]  # shorter ones would mangle messages
        self.sleep = sleep if sleep is not None else time.sleep
        self.clock = clock if clock is not None else time.time
        self.on_wait = on_wait
        self.session = session or requests.Session()
        adapter = HTTPAdapter(max_retries=0, pool_connections=4, pool_maxsize=max(8, self.options.concurrency))
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers.update({"User-Agent": f"okrsync/{__version__}"})
        if headers:
            self.session.headers.update(headers)
        if auth is not None:
            self.session.auth = auth
        self.session.verify = self.options.ca_bundle or True
        self._lock = threading.Lock()
        # the source's limiter: a slot is held while a request is on the wire, never while waiting to retry
        self._slots = threading.BoundedSemaphore(max(1, self.options.concurrency))
        self._held = threading.local()  # this thread holds a slot: a request its auth sends uses the same one
        self.requests_made = 0
        self.retries = 0
        self.waited = 0.0
        self._blocked_until = 0.0  # a rate-limit window with nothing left: wait before the next call
        self._block_owner: int | None = None  # the thread that waits for it through its own retry (not twice)
        # a 5xx that retrying cannot fix (e.g. Jira Data Center's "Search limit exceeded"): answered at once
        self.final: Callable[[requests.Response], bool] | None = None
        self._secondary_hits = 0  # consecutive secondary rate limits (the wait doubles each time)

    # -- helpers ------------------------------------------------------------------------------

    @classmethod
    def for_source(cls, source: str, base_url: str, config: Any, options: ConnectorOptions, *,
                   headers: Mapping[str, str], auth_hint: str, secrets: list[str] | tuple[str, ...] = (),
                   auth: Any = None, clock: Callable[[], float] | None = None) -> HttpClient:
        """The client of one source: its settings' timeouts, attempts, concurrency and CA bundle, the engine's
        sleep, clock and wait reporting, and its credentials among the values redacted from every message."""
        return cls(source, base_url, options=http_options(config, options), headers=headers, auth=auth,
                   auth_hint=auth_hint, secrets=[*options.secrets, *secrets], sleep=options.sleep,
                   clock=clock or options.clock, on_wait=options.on_wait)
    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.base_url, path.lstrip("/"))

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def _where(self, url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"

    def _note_wait(self, message: str, seconds: float) -> None:
        self.waited += seconds
        log.info("%s: %s, waiting %.1f s", self.source, message, seconds)
        if self.on_wait:
            self.on_wait(f"{self.source}: {message}", seconds)

    def _observe_limits(self, resp: requests.Response) -> None:
        h = resp.headers
        remaining = h.get("X-RateLimit-Remaining") or h.get("ratelimit-remaining")
        if remaining is None:
            return
        try:
            left = int(float(remaining))
        except ValueError:
            return
        if left <= 0:
            wait = rate_limit_wait({k: v for k, v in h.items() if k.lower() != "retry-after"}, self.clock())
            if wait:
                self._blocked_until = self.clock() + min(wait, self.options.max_wait) + 1.0
                self._block_owner = None

    # -- the call -----------------------------------------------------------------------------
    def _pause(self) -> None:
        """Wait out a rate-limit window another request of this source ran into (the whole source pauses)."""
        pause = self._blocked_until - self.clock()
        if pause > 0 and self._block_owner != threading.get_ident():
            self._note_wait("rate limit exhausted, waiting for the reset", pause)
            self.sleep(pause)
            self._blocked_until = 0.0

    def _attempt(self, method: str, url: str, retry_unsafe: bool, **kwargs: Any) -> requests.Response:
        if getattr(self._held, "slot", False):  # sent from inside a request of ours (a token minted by its auth)
            return self._send(method, url, retry_unsafe, **kwargs)
        while True:
            self._pause()
            self._slots.acquire()
            if self._blocked_until <= self.clock() or self._block_owner == threading.get_ident():
                break
            self._slots.release()  # a limit was hit while this request waited for its slot: pause first
        self._held.slot = True
        try:
            return self._send(method, url, retry_unsafe, **kwargs)
        finally:
            self._held.slot = False
            self._slots.release()

    def _send(self, method: str, url: str, retry_unsafe: bool, **kwargs: Any) -> requests.Response:
        with self._lock:
            self.requests_made += 1
        timeout = (self.options.connect_timeout, self.options.read_timeout)
        if self.options.ca_bundle:
            # per request: a session-level verify loses to REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE in the environment
            kwargs.setdefault("verify", self.options.ca_bundle)
        try:
            resp = self.session.request(method, url, timeout=timeout, **kwargs)
        except requests.exceptions.ConnectTimeout as exc:
            raise RetryableHTTP("connection timed out") from exc
        except requests.exceptions.SSLError as exc:
            if speaks_no_tls(exc):
                raise SourceError(f"{self.source}: the server at {self._where(url)} does not speak TLS "
                                  f"(is it an http:// URL, or the wrong port?)") from exc
            raise SourceError(f"{self.source}: TLS verification failed for {self._where(url)} "
                              f"(set ca_bundle: for a private CA)") from exc
        except requests.exceptions.ConnectionError as exc:
            host = unresolvable_host(exc, url)
            if host is not None:  # not retried: a name that does not exist will not exist in a second either
                raise SourceError(f"{self.source}: cannot resolve host {host} (check the url: of the source)") from exc
            if method in IDEMPOTENT or retry_unsafe or not_sent(exc):
                raise RetryableHTTP(f"connection failed ({short_reason(exc)})") from exc
            raise SourceError(f"{self.source}: connection failed during {method} {self._where(url)}") from exc
        except requests.exceptions.Timeout as exc:
            if method in IDEMPOTENT or retry_unsafe:
                raise RetryableHTTP("read timed out") from exc
            raise SourceError(f"{self.source}: {method} {self._where(url)} timed out") from exc
        except requests.exceptions.ChunkedEncodingError as exc:
            raise RetryableHTTP("connection closed mid-response") from exc
        self._observe_limits(resp)
        status = resp.status_code
        if status in (403, 429):
            wait = rate_limit_decision(resp, self.clock(), self._secondary_hits)
            if wait is not None:
                secondary = wait.kind == "secondary"
                self._secondary_hits = self._secondary_hits + 1 if secondary else 0
                seconds = min(wait.seconds, self.options.max_wait) if secondary else wait.seconds
                # the whole source pauses, not only this request (GitHub: "wait … before retrying")
                self._blocked_until = self.clock() + seconds if seconds <= self.options.max_wait else 0.0
                self._block_owner = threading.get_ident()  # this thread waits in its retry; the others here
                raise RetryableHTTP(f"rate limited (HTTP {status}{', secondary limit' if secondary else ''})",
                                    seconds, resp)
        self._secondary_hits = 0
        if status >= 500 and status != 501 and not (self.final is not None and self.final(resp)):
            if method in IDEMPOTENT or retry_unsafe:
                asked = rate_limit_wait(resp.headers, self.clock()) if "retry-after" in _lower(resp.headers) else None
                raise RetryableHTTP(f"HTTP {status}", asked, resp)
        return resp

    def request(self, method: str, path: str, *, retry_unsafe: bool = False,
                then: Callable[[requests.Response], Any] | None = None, **kwargs: Any) -> Any:
        """Send with retries; the final response (any status), or then(response): `then` runs inside each attempt
        and may raise RetryableHTTP (one attempt budget, no loop around it). SourceError when retries run out."""
        method, url = method.upper(), self.url(path)

        def attempt() -> Any:
            resp = self._attempt(method, url, retry_unsafe, **kwargs)
            return resp if then is None else then(resp)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            asked = getattr(exc, "wait", None)
            if asked is not None:
                if asked > self.options.max_wait:
                    raise SourceError(f"{self.source}: rate limited; the server asks for {asked:.0f} s, "
                                      f"more than the {self.options.max_wait:.0f} s allowed")
                seconds: float = asked + random.uniform(0, 0.25)
                self._note_wait(f"{getattr(exc, 'reason', exc)}", seconds)
            else:
                seconds = backoff(state.attempt_number, self.options.backoff_base)
                log.info("%s: %s on %s, retry %d in %.1f s", self.source, getattr(exc, "reason", exc),
                         self._where(url), state.attempt_number, seconds)
            self.retries += 1
            return seconds

        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, RetryableHTTP)),
            stop=stop_after_attempt(self.options.max_attempts),
            wait=wait,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except RetryableHTTP as exc:
            raise SourceError(
                f"{self.source}: {exc.reason} from {self._where(url)}, gave up after "
                f"{self.options.max_attempts} attempts"
            ) from None

    def json(self, method: str, path: str, *, expect: tuple[int, ...] = (200,), retry_unsafe: bool = False,
             parse: Callable[[str], Any] | None = None,
             check_body: Callable[[Any, requests.Response], None] | None = None, **kwargs: Any) -> Any:
        """request() + status check + JSON parsing; a page that is not JSON is retried like a 5xx. parse: turns the
        body text into the value instead of json.loads (raising ValueError when it is not JSON). check_body: looks
        at the parsed value within the attempt and may raise RetryableHTTP (an API that says "rate limited" in a
        200's body, as GitHub's GraphQL does): it is then retried like a 429."""
        method, url = method.upper(), self.url(path)

        def then(resp: requests.Response) -> Any:
            self.check(resp, url)
            if resp.status_code not in expect:
                raise self.error(resp, url)
            if resp.status_code == 204 or not resp.content:
                return None
            try:
                value = parse(resp.content.decode(resp.encoding or "utf-8")) if parse is not None else resp.json()
            except (ValueError, json.JSONDecodeError):
                if method not in IDEMPOTENT and not retry_unsafe:
                    raise SourceError(f"{self.source}: {self._where(url)} returned a page that is not valid JSON")
                raise RetryableHTTP("a page that is not valid JSON") from None
            if check_body is not None:
                check_body(value, resp)
            return value

        return self.request(method, url, retry_unsafe=retry_unsafe, then=then, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.json("GET", path, **kwargs)

    def check(self, resp: requests.Response, url: str | None = None) -> None:
        """Raise the one-line auth / not-found errors."""
        url = url or resp.url
        if resp.status_code == 403 and rate_limit_decision(resp, self.clock()) is None:
            hint = f" (check {self.auth_hint})" if self.auth_hint else ""
            raise Forbidden(f"{self.source}: authentication failed for {self._where(self.base_url).rstrip('/')}{hint}",
                            self.redact(error_text(body_of(resp))))
        if resp.status_code == 401:
            hint = f" (check {self.auth_hint})" if self.auth_hint else ""
            raise AuthError(f"{self.source}: authentication failed for {self._where(self.base_url).rstrip('/')}{hint}")
        if resp.status_code == 404:
            raise NotFoundError(f"{self.source}: not found: {self._where(url)}")

    def error(self, resp: requests.Response, url: str) -> HTTPStatusError:
        body = body_of(resp)
        detail = self.redact(error_text(body))
        msg = f"{self.source}: HTTP {resp.status_code} from {self._where(url)}"
        return HTTPStatusError(f"{msg}: {detail}" if detail else msg, resp.status_code, body)

    def close(self) -> None:
        self.session.close()


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _says_rate_limit(resp: requests.Response) -> bool:
    """GitHub's secondary-limit 403 says so in its message ("You have exceeded a secondary rate limit")."""
    text = resp.text[:500].lower() if resp.content else ""
    return "rate limit" in text
