"""Webhook signature checks per source type: exact headers, prefixes, rotation, and every way to fail."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from requests.structures import CaseInsensitiveDict

from okrsync.serve.signatures import SCHEMES, digest, sign, verify

SECRET = "It's a Secret to Everybody"
BODY = b"Hello, World!"
# GitHub's documented test vector (docs.github.com, "Validating webhook deliveries")
GITHUB_VECTOR = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
OTHER = "another-secret"


def h(**headers: str) -> CaseInsensitiveDict:
    return CaseInsensitiveDict({k.replace("_", "-"): v for k, v in headers.items()})


def test_digest_matches_githubs_published_vector():
    assert digest(SECRET, BODY) == GITHUB_VECTOR
    assert digest(SECRET, BODY) == hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()


GOOD = "sha256=" + GITHUB_VECTOR
CASES = [
    # (source type, headers, secret, expected)
    ("jira", h(X_Hub_Signature=GOOD), SECRET, True),
    ("jira", h(x_hub_signature=GOOD), SECRET, True),  # header names are case-insensitive
    ("jira", h(X_Hub_Signature="sha256=" + GITHUB_VECTOR.upper()), SECRET, True),  # hex in either case
    ("jira", h(X_Hub_Signature="SHA256=" + GITHUB_VECTOR), SECRET, True),
    ("jira", h(X_Hub_Signature=GITHUB_VECTOR), SECRET, False),  # no "sha256=" prefix
    ("jira", h(X_Hub_Signature="sha1=" + GITHUB_VECTOR), SECRET, False),
    ("jira", h(X_Hub_Signature_256=GOOD), SECRET, False),  # GitHub's header is not Jira's
    ("jira", h(X_Hub_Signature=GOOD), OTHER, False),
    ("jira", h(X_Hub_Signature=GOOD), None, False),  # no secret configured: refused
    ("jira", h(X_Hub_Signature=GOOD), "", False),
    ("jira", h(), SECRET, False),
    ("github", h(X_Hub_Signature_256=GOOD), SECRET, True),
    ("github", h(X_Hub_Signature=GOOD), SECRET, False),  # the SHA-1-era header name does not count
    ("github", h(X_Hub_Signature_256=GOOD[:-1]), SECRET, False),  # truncated
    ("github", h(X_Hub_Signature_256=GOOD + "0"), SECRET, False),  # too long
    ("github", h(X_Hub_Signature_256=GOOD[:-1] + "f"), SECRET, False),  # one digit off
    ("github", h(X_Hub_Signature_256=""), SECRET, False),
    ("github", h(X_Hub_Signature_256="sha256=é" + GITHUB_VECTOR[1:]), SECRET, False),  # not ASCII
    ("pagerduty", h(X_PagerDuty_Signature="v1=" + GITHUB_VECTOR), SECRET, True),
    ("pagerduty", h(X_PagerDuty_Signature=f"v1={'0' * 64},v1={GITHUB_VECTOR}"), SECRET, True),  # rotation
    ("pagerduty", h(X_PagerDuty_Signature=f"v1={GITHUB_VECTOR}, v1={'0' * 64}"), SECRET, True),
    ("pagerduty", h(X_PagerDuty_Signature=f"v1={'0' * 64},v1={'1' * 64}"), SECRET, False),
    ("pagerduty", h(X_PagerDuty_Signature=GOOD), SECRET, False),  # "sha256=" is not PagerDuty's scheme
    ("pagerduty", h(X_PagerDuty_Signature="v1=" + GITHUB_VECTOR), OTHER, False),
    ("pagerduty", h(X_PagerDuty_Signature=","), SECRET, False),
    ("servicenow", h(X_Okrsync_Signature=GOOD), SECRET, True),
    ("servicenow", h(X_Okrsync_Signature=GOOD + "," + GOOD), SECRET, False),  # only PagerDuty sends several
    ("servicenow", h(X_Hub_Signature=GOOD), SECRET, False),
    ("servicenow", h(X_Okrsync_Signature="v1=" + GITHUB_VECTOR), SECRET, False),
    ("webhook", h(X_Okrsync_Signature=GOOD), SECRET, False),  # not a source type that receives webhooks
]


@pytest.mark.parametrize("kind, headers, secret, expected", CASES,
                         ids=[f"{c[0]}-{i}-{'ok' if c[3] else 'refused'}" for i, c in enumerate(CASES)])
def test_verify(kind, headers, secret, expected):
    assert verify(kind, secret, headers, BODY) is expected


@pytest.mark.parametrize("kind", sorted(SCHEMES))
def test_a_changed_body_fails_and_sign_round_trips(kind):
    headers = CaseInsensitiveDict(sign(kind, SECRET, BODY))
    assert verify(kind, SECRET, headers, BODY)
    assert not verify(kind, SECRET, headers, BODY + b" ")
    assert not verify(kind, SECRET, headers, b"")


def test_sign_writes_each_sources_header():
    assert sign("jira", SECRET, BODY) == {"X-Hub-Signature": GOOD}
    assert sign("github", SECRET, BODY) == {"X-Hub-Signature-256": GOOD}
    assert sign("pagerduty", SECRET, BODY) == {"X-PagerDuty-Signature": "v1=" + GITHUB_VECTOR}
    assert sign("servicenow", SECRET, BODY) == {"X-Okrsync-Signature": GOOD}
