"""Webhook signatures per source type: HMAC-SHA256 of the raw body, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class Scheme:
    """Where a source type puts its signature and how the value is written."""

    header: str
    prefix: str  # "sha256=" or "v1="
    several: bool = False  # PagerDuty: "v1=<hex>,v1=<hex>" while a secret is being rotated


SCHEMES: dict[str, Scheme] = {
    "jira": Scheme("X-Hub-Signature", "sha256="),  # Jira Cloud / Data Center 10+ webhooks with a secret
    "github": Scheme("X-Hub-Signature-256", "sha256="),
    "pagerduty": Scheme("X-PagerDuty-Signature", "v1=", several=True),
    "servicenow": Scheme("X-Okrsync-Signature", "sha256="),  # the Business Rule in the README signs like this
}


def digest(secret: str, body: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of the raw body keyed with the webhook secret."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def sign(source_type: str, secret: str, body: bytes) -> dict[str, str]:
    """The signature header a real sender would add (for the sandbox and tests)."""
    scheme = SCHEMES[source_type]
    return {scheme.header: scheme.prefix + digest(secret, body)}


def verify(source_type: str, secret: str | None, headers: Mapping[str, str], body: bytes) -> bool:
    """True only when a secret is configured and the request carries a matching signature.

    `headers` must look names up case-insensitively (Starlette's Headers, requests' CaseInsensitiveDict)."""
    scheme = SCHEMES.get(source_type)
    if scheme is None or not secret:
        return False
    value = headers.get(scheme.header)
    if not value:
        return False
    want = (scheme.prefix + digest(secret, body)).encode("ascii")
    candidates = value.split(",") if scheme.several else [value]
    ok = False
    for candidate in candidates:
        got = candidate.strip()
        if got[:len(scheme.prefix)].lower() == scheme.prefix:
            got = scheme.prefix + got[len(scheme.prefix):].lower()  # hex digits in either case
        # every candidate is compared (no early exit) so the time taken does not tell which one matched
        ok = hmac.compare_digest(want, got.encode("utf-8", "replace")) or ok
    return ok
