"""The one retry layer: 429/Retry-After, 5xx, invalid JSON, timeouts, rate-limit resets, auth, redaction."""

import json

import pytest
import requests
import responses

from okrsync.connectors.base import AuthError, NotFoundError, SourceError
from okrsync.connectors.http import (
    HttpClient,
    HttpOptions,
    HTTPStatusError,
    backoff,
    parse_retry_after,
    rate_limit_wait,
)

BASE = "https://api.example.com"


class Clock:
    def __init__(self, start=1_800_000_000.0):
        self.now = start
        self.sleeps: list[float] = []

    def time(self):
        return self.now

    def sleep(self, s):
        self.sleeps.append(s)
        self.now += s


def client(clock=None, **kw):
    clock = clock or Clock()
    opts = HttpOptions(max_attempts=kw.pop("max_attempts", 4))
    return HttpClient("jira", BASE, options=opts, sleep=clock.sleep, clock=clock.time, auth_hint="OKRSYNC_SOURCES__JIRA__TOKEN",
                      **kw), clock


@responses.activate
def test_429_with_retry_after_then_success():
    responses.get(f"{BASE}/x", status=429, headers={"Retry-After": "7"})
    responses.get(f"{BASE}/x", json={"ok": True})
    c, clock = client()
    assert c.get("/x") == {"ok": True}
    assert c.requests_made == 2
    assert 7 <= clock.sleeps[0] <= 7.25


@responses.activate
def test_5xx_burst_backs_off_then_succeeds():
    for status in (500, 502, 503):
        responses.get(f"{BASE}/x", status=status)
    responses.get(f"{BASE}/x", json=[1])
    c, clock = client()
    assert c.get("/x") == [1]
    assert len(clock.sleeps) == 3
    assert clock.sleeps[0] <= clock.sleeps[2] * 2  # exponential, jittered


@responses.activate
def test_gives_up_after_max_attempts_with_one_line():
    for _ in range(4):
        responses.get(f"{BASE}/x", status=503)
    c, _ = client()
    with pytest.raises(SourceError) as exc:
        c.get("/x?token=abc")
    assert str(exc.value) == "jira: HTTP 503 from https://api.example.com/x, gave up after 4 attempts"
    assert c.requests_made == 4


@responses.activate
def test_connection_errors_and_timeouts_are_retried():
    responses.get(f"{BASE}/x", body=requests.exceptions.ConnectionError("Connection reset by peer"))
    responses.get(f"{BASE}/x", body=requests.exceptions.ReadTimeout("Read timed out"))
    responses.get(f"{BASE}/x", json={"n": 1})
    c, clock = client()
    assert c.get("/x") == {"n": 1}
    assert len(clock.sleeps) == 2


@responses.activate
def test_invalid_json_page_is_retried():
    responses.get(f"{BASE}/x", body='{"issues": [', content_type="application/json")
    responses.get(f"{BASE}/x", json={"issues": []})
    c, _ = client()
    assert c.get("/x") == {"issues": []}


@responses.activate
def test_invalid_json_forever_fails_cleanly():
    for _ in range(4):
        responses.get(f"{BASE}/x", body="<html>oops</html>")
    c, _ = client()
    with pytest.raises(SourceError, match="not valid JSON"):
        c.get("/x")


@responses.activate
def test_invalid_json_is_retried_within_the_one_attempt_budget():
    """Not JSON is one more retryable outcome of the same tenacity attempts: max_attempts requests in all."""
    for _ in range(40):
        responses.get(f"{BASE}/x", body="<html>oops</html>")
    c, _ = client()
    with pytest.raises(SourceError, match="not valid JSON from .*, gave up after"):
        c.get("/x")
    assert len(responses.calls) == c.options.max_attempts


@responses.activate
def test_post_is_not_resent_on_5xx():
    responses.post(f"{BASE}/comment", status=502)
    c, clock = client()
    with pytest.raises(HTTPStatusError) as exc:
        c.json("POST", "/comment", json={"body": "x"}, expect=(201,))
    assert exc.value.status == 502
    assert c.requests_made == 1
    assert clock.sleeps == []


@responses.activate
def test_post_is_retried_on_429():
    responses.post(f"{BASE}/comment", status=429, headers={"Retry-After": "1"})
    responses.post(f"{BASE}/comment", status=201, json={"id": "1"})
    c, _ = client()
    assert c.json("POST", "/comment", json={}, expect=(201,)) == {"id": "1"}


@responses.activate
def test_rate_limit_exhausted_waits_for_reset_before_next_call():
    clock = Clock()
    reset = int(clock.now) + 30
    responses.get(f"{BASE}/a", json=[], headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})
    responses.get(f"{BASE}/b", json=[])
    waits = []
    c, _ = client(clock, on_wait=lambda msg, s: waits.append((msg, s)))
    c.get("/a")
    assert clock.sleeps == []
    c.get("/b")
    assert clock.sleeps and 30 <= clock.sleeps[0] <= 31.01
    assert waits and waits[0][0].startswith("jira: rate limit")


@responses.activate
def test_github_secondary_limit_403_with_retry_after():
    responses.get(f"{BASE}/x", status=403, headers={"Retry-After": "5"}, json={"message": "secondary rate limit"})
    responses.get(f"{BASE}/x", json={})
    c, clock = client()
    c.get("/x")
    assert 5 <= clock.sleeps[0] <= 5.25


@responses.activate
def test_401_is_an_auth_error_naming_the_variable():
    responses.get(f"{BASE}/x", status=401, json={"message": "Bad credentials"})
    c, _ = client()
    with pytest.raises(AuthError) as exc:
        c.get("/x")
    assert str(exc.value) == ("jira: authentication failed for https://api.example.com "
                              "(check OKRSYNC_SOURCES__JIRA__TOKEN)")


@responses.activate
def test_404_and_other_4xx():
    responses.get(f"{BASE}/missing", status=404)
    responses.get(f"{BASE}/bad", status=400, json={"errorMessages": ["Error in the JQL Query: 'x'"], "errors": {}})
    c, _ = client()
    with pytest.raises(NotFoundError):
        c.get("/missing")
    with pytest.raises(HTTPStatusError) as exc:
        c.get("/bad")
    assert "Error in the JQL Query" in str(exc.value)


@responses.activate
def test_secrets_are_redacted_from_error_bodies():
    responses.get(f"{BASE}/x", status=400, json={"message": "token s3cr3t-value is malformed"})
    c, _ = client(secrets=["s3cr3t-value"])
    with pytest.raises(HTTPStatusError) as exc:
        c.get("/x")
    assert "s3cr3t-value" not in str(exc.value)
    assert "***" in str(exc.value)


@responses.activate
def test_every_request_has_a_timeout():
    seen = []

    def cb(request):
        seen.append(request.req_kwargs.get("timeout"))
        return (200, {}, json.dumps({}))

    responses.add_callback(responses.GET, f"{BASE}/x", callback=cb)
    c, _ = client()
    c.get("/x")
    assert seen == [(10.0, 30.0)]


@pytest.mark.parametrize("value,expected", [("5", 5.0), ("0", 0.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
                                            (None, None), ("soon", None)])
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, now=1_800_000_000.0) == expected


@pytest.mark.parametrize("headers,expected", [
    ({"Retry-After": "3"}, 3.0),
    ({"X-RateLimit-Reset": "1800000060"}, 60.0),  # GitHub epoch seconds
    ({"X-RateLimit-Reset": "2027-01-15T08:00:30Z"}, 30.0),  # Jira ISO time
    ({"ratelimit-reset": "12"}, 12.0),  # PagerDuty seconds
    ({}, None),
])
def test_rate_limit_wait(headers, expected):
    now = 1_800_000_000.0 if "2027" not in str(headers) else 1_800_000_000.0
    if "2027" in str(headers):
        from datetime import datetime, timezone

        now = datetime(2027, 1, 15, 8, 0, tzinfo=timezone.utc).timestamp()
    assert rate_limit_wait(headers, now) == expected


def test_backoff_is_exponential_with_jitter_and_capped():
    import random

    rng = random.Random(1)
    values = [backoff(n, 1.0, 60.0, rng) for n in range(1, 10)]
    for n, v in enumerate(values, start=1):
        d = min(60.0, 2 ** (n - 1))
        assert d / 2 <= v <= d


@responses.activate
def test_a_configured_ca_bundle_wins_over_requests_ca_bundle_in_the_environment(monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    seen = []

    def cb(request):
        seen.append(request.req_kwargs.get("verify"))
        return (200, {}, "{}")

    responses.add_callback(responses.GET, f"{BASE}/x", callback=cb)
    clock = Clock()
    c = HttpClient("x", BASE, options=HttpOptions(ca_bundle="/etc/okrsync/private-ca.pem"), sleep=clock.sleep)
    c.get("/x")
    assert seen == ["/etc/okrsync/private-ca.pem"]


# -- rate limits: GitHub's documented order, Jira Data Center's retry-after: 0 ---------------------------------
NOW = 1_800_000_000.0
HOUR_AWAY = str(int(NOW) + 3599)
SECONDARY = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}


def _resp(status, headers, body=None):
    r = requests.Response()
    r.status_code = status
    r.headers.update(headers)
    r._content = json.dumps(body).encode() if body is not None else b""
    return r


@pytest.mark.parametrize("status, headers, body, hits, expected", [
    # retry-after wins over everything (GitHub, Jira Cloud, ServiceNow)
    (403, {"retry-after": "30", "x-ratelimit-remaining": "0", "x-ratelimit-reset": HOUR_AWAY}, SECONDARY, 0,
     (30.0, "retry_after")),
    (429, {"Retry-After": "7"}, None, 0, (7.0, "retry_after")),
    (429, {"Retry-After": "0"}, None, 0, (0.0, "retry_after")),
    # primary limit used up: until the reset
    (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": HOUR_AWAY}, {"message": "API rate limit exceeded"}, 0,
     (3599.0, "reset")),
    (429, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 20)}, None, 0, (20.0, "reset")),
    (429, {"ratelimit-reset": "12", "ratelimit-remaining": "0"}, None, 0, (12.0, "reset")),  # PagerDuty
    # secondary limit: the reset header is on every response and is not the wait; 60 s, doubling
    (403, {"x-ratelimit-remaining": "4711", "x-ratelimit-reset": HOUR_AWAY}, SECONDARY, 0, (60.0, "secondary")),
    (403, {"x-ratelimit-remaining": "4711", "x-ratelimit-reset": HOUR_AWAY}, SECONDARY, 1, (120.0, "secondary")),
    (403, {"x-ratelimit-remaining": "4711", "x-ratelimit-reset": HOUR_AWAY}, SECONDARY, 3, (480.0, "secondary")),
    (429, {}, None, 0, (60.0, "secondary")),
    # not a rate limit: a permission error (Jira Data Center sends retry-after: 0 on every response)
    (403, {"retry-after": "0", "X-RateLimit-Remaining": "99", "X-RateLimit-Limit": "100"},
     {"errorMessages": ["You do not have permission to edit this issue."]}, 0, None),
    (403, {"x-ratelimit-remaining": "4711", "x-ratelimit-reset": HOUR_AWAY},
     {"message": "Resource not accessible by personal access token"}, 0, None),
    (403, {"X-RateLimit-Remaining": "0", "retry-after": "0"}, {"errorMessages": ["Forbidden"]}, 0, None),  # no reset
])
def test_rate_limit_decision(status, headers, body, hits, expected):
    from okrsync.connectors.http import rate_limit_decision

    got = rate_limit_decision(_resp(status, headers, body), NOW, hits)
    assert (None if got is None else (got.seconds, got.kind)) == expected


@responses.activate
def test_a_secondary_limit_waits_a_minute_then_doubles_never_until_the_primary_reset():
    clock = Clock(NOW)
    headers = {"x-ratelimit-remaining": "4711", "x-ratelimit-reset": HOUR_AWAY}
    responses.get(f"{BASE}/x", status=403, headers=headers, json=SECONDARY)
    responses.get(f"{BASE}/x", status=403, headers=headers, json=SECONDARY)
    responses.get(f"{BASE}/x", json={"ok": True}, headers=headers)
    c, _ = client(clock)
    assert c.get("/x") == {"ok": True}
    assert [round(s) for s in clock.sleeps] == [60, 120]  # not 3599
    assert 60 <= clock.sleeps[0] <= 60.25 and 120 <= clock.sleeps[1] <= 120.25


@responses.activate
def test_a_secondary_limit_pauses_the_other_requests_of_the_source():
    import threading

    clock = Clock(NOW)
    c, _ = client(clock)
    c._blocked_until, c._block_owner = NOW + 60, threading.get_ident() + 1  # set by another thread's 403
    responses.get(f"{BASE}/y", json=[])
    c.get("/y")
    assert clock.sleeps == [60.0]


@responses.activate
def test_a_403_with_retry_after_0_is_a_permission_error_sent_once():
    from okrsync.connectors.http import Forbidden

    responses.get(f"{BASE}/x", status=403, headers={"retry-after": "0", "X-RateLimit-Remaining": "99"},
                  json={"errorMessages": ["You do not have permission to edit this issue."], "errors": {}})
    c, clock = client()
    with pytest.raises(Forbidden) as exc:
        c.get("/x")
    assert exc.value.detail == "You do not have permission to edit this issue."
    assert c.requests_made == 1 and clock.sleeps == []
