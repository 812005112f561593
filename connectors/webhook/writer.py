"""Webhook write-back: POST a KR status change as a signed okrsync JSON event or a Slack message.

Target: ``{to: webhook, url: https://..., format: json | slack, secret_env: ENV_VAR}``. The engine calls
write() only when the KR's status fingerprint changed, so every POST is a change.

format: json — ``Content-Type: application/json; charset=utf-8``, body (compact UTF-8 JSON, sorted keys)::

    {"event": "okrsync.kr_status",        # always this string
     "schema": 1,                          # bumped on an incompatible change
     "delivery": "<32 hex>",               # unique per write(); the same on a 429 re-send
     "sent_at": "2026-11-15T10:00:00.000Z",
     "fingerprint": "<40 hex>",            # KRStatus.fingerprint(): equal -> same shown status
     "status_label": "on track",
     "objective": {"id": "O1", "title": "..."},
     "window": {"start": "<UTC ISO>", "end": "<UTC ISO>"} | null,
     "kr": {"kr", "title", "objective", "metric", "status", "value", "baseline", "target", "progress",
            "score", "expected", "items", "unit", "period", "overridden", "computed_at"}}

``kr`` is KRStatus.machine(): status is achieved | on_track | at_risk | off_track | no_data |
not_started; value/baseline/target/progress/score/expected are unrounded numbers (fractions, 1.25 not
125) or null.

format: slack — Slack's incoming-webhook shape ``{"text": <fallback>, "blocks": [header, section with
status/value/target/progress/pace/baseline/items fields, context]}`` (also Mattermost/Rocket.Chat).

Headers on every POST: ``X-Okrsync-Event: okrsync.kr_status``, ``X-Okrsync-Delivery: <delivery>``.
With ``secret_env`` set (the variable must be set and non-empty, or the write fails):
``X-Okrsync-Timestamp: <unix seconds>`` and ``X-Okrsync-Signature: sha256=<hex>`` where
hex = HMAC-SHA256(key = the secret as UTF-8, message = timestamp + "." + the exact body bytes).
A receiver verifies by recomputing it over the raw request body (before any JSON parsing), comparing
in constant time, and rejecting timestamps more than 5 minutes from its clock (replay protection);
payload.verify() is a reference implementation. Dedupe on ``delivery`` (or ``fingerprint``).

Redirects are not followed (requests would turn a redirected POST into a GET and could carry the
signature to another host): a 3xx is an error naming the new location.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import requests

from okrsync.config.keyresults import WebhookTarget
from okrsync.config.sources import check_url
from okrsync.domain.records import iso
from okrsync.domain.status import KRStatus
from okrsync.domain.text import fmt_number, fmt_pct

from ..base import AuthError, ConnectorOptions, NotFoundError, SourceError, WriteResult, redact
from ..http import HttpClient, HttpOptions
from . import payload


def _url(target: WebhookTarget) -> str:
    """The target's URL once resolved (url_env read by _resolve)."""
    if target.url is None:
        raise SourceError(f"webhook ${target.url_env}: no URL")
    return target.url


class WebhookWriter:
    """One writer for every webhook target of a run (an HttpClient per URL)."""

    def __init__(self, options: ConnectorOptions | None = None, *, http_options: HttpOptions | None = None,
                 clock: Callable[[], float] = time.time, environ: Mapping[str, str] | None = None,
                 new_delivery: Callable[[], str] = lambda: uuid.uuid4().hex):
        self.options = options or ConnectorOptions()
        self.http_options = http_options or HttpOptions()
        self.clock = clock
        self.environ = os.environ if environ is None else environ
        self.new_delivery = new_delivery
        self._clients: dict[str, HttpClient] = {}

    # -- helpers ------------------------------------------------------------------------------
    def _resolve(self, target: WebhookTarget) -> WebhookTarget:
        """url_env: the URL comes from the environment (never shown: it is a secret)."""
        if target.url is not None:
            return target
        value = self.environ.get(target.url_env or "")
        if not value:
            raise SourceError(f"webhook ${target.url_env}: url_env {target.url_env} is not set "
                              f"(the environment variable holding the webhook URL)")
        return target.model_copy(update={"url": value})

    def _where(self, target: WebhookTarget) -> tuple[str, list[str]]:
        url = _url(target)
        where, hidden = payload.display_url(url, target.format)
        try:
            check_url(url)
        except ValueError as exc:
            raise SourceError(_redact(f"webhook {where}: {exc}", [url, *hidden])) from None
        return where, hidden

    def _secret(self, target: WebhookTarget, where: str) -> str | None:
        if not target.secret_env:
            return None
        value = self.environ.get(target.secret_env)
        if not value:
            raise SourceError(f"webhook {where}: secret_env {target.secret_env} is not set "
                              f"(the environment variable holding the signing secret)")
        return value

    def _client(self, target: WebhookTarget, where: str, secrets: list[str]) -> HttpClient:
        url = _url(target)
        client = self._clients.get(url)
        if client is None:
            client = HttpClient(f"webhook {where}", url, options=self.http_options,
                                headers={"Content-Type": "application/json; charset=utf-8"},
                                secrets=secrets, sleep=self.options.sleep, clock=self.clock,
                                on_wait=self.options.on_wait)
            self._clients[url] = client
        return client

    def _build(self, target: WebhookTarget, status: KRStatus, delivery: str) -> bytes:
        if target.format == "slack":
            return payload.encode(payload.slack_body(status))
        sent_at = iso(datetime.fromtimestamp(self.clock(), timezone.utc))
        return payload.encode(payload.event_body(status, delivery=delivery, sent_at=sent_at))

    # -- the Writer protocol ------------------------------------------------------------------
    def plan(self, target: WebhookTarget, status: KRStatus) -> list[str]:
        if target.url is None and not self.environ.get(target.url_env or ""):
            return [f"POST ${target.url_env} — {target.url_env} is NOT set, the write would fail"]
        target = self._resolve(target)
        where, _ = self._where(target)
        if target.url_env:
            where, _ = payload.display_url(_url(target), "slack")  # a URL from the environment is shown redacted
        if target.secret_env:
            missing = ("" if self.environ.get(target.secret_env)
                       else f" — {target.secret_env} is NOT set, the write would fail")
            signing = f"signed (HMAC-SHA256 with ${target.secret_env}){missing}"
        else:
            signing = "unsigned"
        kind = "Slack message" if target.format == "slack" else f"JSON event {payload.EVENT}"
        flag = " (override)" if status.overridden else ""
        return [
            f"POST {where} ({target.format}: {kind}, {signing})",
            f"status {status.label}{flag}: value {fmt_number(status.value, status.unit, status.target)} of target "
            f"{fmt_number(status.target, status.unit)}, progress {fmt_pct(status.progress)} "
            f"(expected {fmt_pct(status.expected)})",
        ]

    def write(self, target: WebhookTarget, status: KRStatus, remote_ref: str | None) -> WriteResult:
        env_url = target.url is None
        target = self._resolve(target)
        where, hidden = self._where(target)
        if env_url:
            where, more = payload.display_url(_url(target), "slack")
            hidden = [*hidden, *more, _url(target)]
        secret = self._secret(target, where)
        secrets = [s for s in [secret, *hidden, *self.options.secrets] if s]
        delivery = self.new_delivery()
        body = self._build(target, status, delivery)
        headers = {payload.EVENT_HEADER: payload.EVENT, payload.DELIVERY_HEADER: delivery}
        if secret is not None:
            timestamp = str(int(self.clock()))
            headers[payload.TIMESTAMP_HEADER] = timestamp
            headers[payload.SIGNATURE_HEADER] = payload.sign(secret, timestamp, body)
        client = self._client(target, where, secrets)
        try:
            resp = client.request("POST", _url(target), data=body, headers=headers, allow_redirects=False)
        except SourceError as exc:
            # HttpClient names the full URL; a Slack URL's path is itself a secret
            raise type(exc)(_redact(str(exc), secrets)) from None
        self._check(resp, where, secrets)
        signed = "signed" if secret is not None else "unsigned"
        return WriteResult(remote_ref=delivery,
                           actions=[("post", f"{where} HTTP {resp.status_code} ({target.format}, {signed}, "
                                             f"delivery {delivery})")])

    def _check(self, resp: requests.Response, where: str, secrets: list[str]) -> None:
        code = resp.status_code
        if 200 <= code < 300:
            return
        if 300 <= code < 400:
            loc = resp.headers.get("Location", "")
            parts = urlsplit(loc)
            loc = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else parts.path
            raise SourceError(_redact(f"webhook {where}: HTTP {code} redirect to {loc or '?'} not followed "
                                      f"(set the final URL in the workspace)", secrets))
        detail = " ".join((resp.text or "")[:200].split())
        msg = _redact(f"webhook {where}: HTTP {code}" + (f": {detail}" if detail else ""), secrets)
        if code in (401, 403):
            raise AuthError(msg)
        if code in (404, 410):
            raise NotFoundError(msg)
        raise SourceError(msg)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def _redact(text: str, secrets: list[str]) -> str:
    return redact(text, secrets).replace("\n", " ")


def build_writer(name: Any, config: Any, credentials: Any, options: ConnectorOptions) -> WebhookWriter:
    """name/config/credentials are None for webhooks (their settings live on each target)."""
    return WebhookWriter(options)
