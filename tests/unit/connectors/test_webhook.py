"""Webhook write-back: JSON event schema, HMAC signature, Slack format, errors without secrets, plan()."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
import responses

from okrsync.config.keyresults import WebhookTarget
from okrsync.connectors.base import AuthError, ConnectorOptions, NotFoundError, SourceError
from okrsync.connectors.webhook import payload as P
from okrsync.connectors.webhook.writer import WebhookWriter, build_writer
from okrsync.domain.status import KRStatus

NOW = 1_763_200_000.0  # 2025-11-15T09:46:40Z
SECRET = "whsec-Zk1c9q-very-secret"
SLACK_TOKEN = "XyZ123abcDEF456ghiJKL789"
SLACK_URL = f"https://hooks.slack.com/services/T0001/B0002/{SLACK_TOKEN}"
URL = "https://hooks.example.com/okr/events"


def status(**kw) -> KRStatus:
    base = dict(kr_id="KR1", title="Increase release frequency", objective_id="O1",
                objective_title="Enhance software quality", metric="deployment_frequency", status="on_track",
                value=6.0, baseline=5.0, target=7.0, progress=0.5, score=0.5, expected=0.45, items=12,
                unit="deploys/week", period="2026-Q4", window_start="2026-10-01T00:00:00.000Z",
                window_end="2026-11-15T00:00:00.000Z", computed_at="2026-11-15T00:00:00.000Z")
    base.update(kw)
    return KRStatus(**base)


def writer(env: dict | None = None, sleeps: list | None = None) -> WebhookWriter:
    sleeps = [] if sleeps is None else sleeps
    return WebhookWriter(ConnectorOptions(sleep=sleeps.append), clock=lambda: NOW, environ=env or {},
                         new_delivery=lambda: "d" * 32)


def target(url: str = URL, **kw) -> WebhookTarget:
    return WebhookTarget(to="webhook", url=url, **kw)


# -- JSON event ---------------------------------------------------------------------------------
@responses.activate
def test_json_body_schema_and_headers():
    responses.post(URL, status=204)
    s = status()
    result = writer().write(target(), s, None)
    req = responses.calls[0].request
    body = json.loads(req.body)
    assert body == {
        "event": "okrsync.kr_status",
        "schema": 1,
        "delivery": "d" * 32,
        "sent_at": "2025-11-15T09:46:40.000Z",
        "fingerprint": s.fingerprint(),
        "kr": s.machine(),
        "status_label": "on track",
        "objective": {"id": "O1", "title": "Enhance software quality"},
        "window": {"start": "2026-10-01T00:00:00.000Z", "end": "2026-11-15T00:00:00.000Z"},
    }
    assert body["kr"]["kr"] == "KR1" and body["kr"]["progress"] == 0.5 and body["kr"]["status"] == "on_track"
    assert req.headers["Content-Type"] == "application/json; charset=utf-8"
    assert req.headers["X-Okrsync-Event"] == "okrsync.kr_status"
    assert req.headers["X-Okrsync-Delivery"] == "d" * 32
    assert "X-Okrsync-Signature" not in req.headers and "X-Okrsync-Timestamp" not in req.headers
    assert result.remote_ref == "d" * 32
    assert result.actions == [("post", f"{URL} HTTP 204 (json, unsigned, delivery {'d' * 32})")]


@responses.activate
def test_non_finite_and_missing_numbers_are_null():
    responses.post(URL, status=200)
    writer().write(target(), status(value=None, progress=float("inf"), score=None, status="no_data",
                                    window_start=None, window_end=None), None)
    body = json.loads(responses.calls[0].request.body)
    assert body["kr"]["value"] is None and body["kr"]["progress"] is None
    assert body["window"] is None


# -- signing ------------------------------------------------------------------------------------
@responses.activate
def test_hmac_signature_verifies_with_the_known_secret():
    responses.post(URL, status=200)
    writer({"OKR_HOOK_SECRET": SECRET}).write(target(secret_env="OKR_HOOK_SECRET"), status(), None)
    req = responses.calls[0].request
    raw = req.body if isinstance(req.body, bytes) else req.body.encode()
    ts = req.headers["X-Okrsync-Timestamp"]
    assert ts == str(int(NOW))
    expected = hmac.new(SECRET.encode(), f"{ts}.".encode() + raw, hashlib.sha256).hexdigest()
    assert req.headers["X-Okrsync-Signature"] == f"sha256={expected}"
    # the reference receiver check: accepts it, rejects tampering, a wrong secret and a stale timestamp
    sig = req.headers["X-Okrsync-Signature"]
    assert P.verify(SECRET, raw, ts, sig, now=NOW + 10)
    assert not P.verify(SECRET, raw.replace(b"on_track", b"achieved"), ts, sig, now=NOW)
    assert not P.verify("other", raw, ts, sig, now=NOW)
    assert not P.verify(SECRET, raw, ts, sig, now=NOW + 301)
    assert not P.verify(SECRET, raw, str(int(NOW) + 1), sig, now=NOW)
    assert not P.verify(SECRET, raw, None, sig, now=NOW)


def test_sign_known_vector():
    # computed independently: printf '1700000000.{}' | openssl dgst -sha256 -hmac key
    assert P.sign("key", "1700000000", b"{}") == (
        "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae")


def test_missing_secret_env_is_one_line_error_naming_the_variable():
    with pytest.raises(SourceError) as err:
        writer({}).write(target(url=URL + "?token=abcd1234", secret_env="OKR_HOOK_SECRET"), status(), None)
    assert str(err.value) == (f"webhook {URL}: secret_env OKR_HOOK_SECRET is not set "
                              "(the environment variable holding the signing secret)")


def test_missing_secret_env_message():
    with pytest.raises(SourceError, match=r"^webhook https://hooks\.example\.com/okr/events: secret_env "
                                          r"OKR_HOOK_SECRET is not set"):
        writer({"OKR_HOOK_SECRET": ""}).write(target(secret_env="OKR_HOOK_SECRET"), status(), None)


# -- Slack --------------------------------------------------------------------------------------
@responses.activate
def test_slack_format():
    responses.post(SLACK_URL, body="ok", status=200)
    s = status(title="Cut p90 <latency> & errors", status="at_risk", overridden=True)
    result = writer().write(target(url=SLACK_URL, format="slack"), s, None)
    body = json.loads(responses.calls[0].request.body)
    assert set(body) == {"text", "blocks"}
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "context"]
    header = body["blocks"][0]["text"]
    assert header == {"type": "plain_text", "text": "KR1 · Cut p90 <latency> & errors", "emoji": True}
    fields = [f["text"] for f in body["blocks"][1]["fields"]]
    assert fields[0] == "*Status*\n:large_yellow_circle: at risk (override)"
    assert fields[1] == "*Value / target*\n6 deploys/week / 7 deploys/week"
    assert fields[2] == "*Progress*\n`▓▓▓▓▓░░░░░` 50%"
    assert fields[3] == "*Expected pace*\n45% of the period elapsed"
    assert fields[4] == "*Baseline*\n5 deploys/week"
    assert fields[5] == "*Items counted*\n12"
    assert body["text"].startswith("KR1 Cut p90 &lt;latency&gt; &amp; errors: at risk (override)")
    assert "expected 45%" in body["text"]
    context = body["blocks"][2]["elements"][0]["text"]
    assert "Objective O1" in context and "period 2026-Q4" in context
    # the token in the path is never shown
    assert SLACK_TOKEN not in json.dumps(result.actions)
    assert "https://hooks.slack.com/services/T0001/B0002/***" in result.actions[0][1]


@pytest.mark.parametrize("state,emoji", sorted(P.EMOJI.items()))
def test_slack_emoji_per_status(state, emoji):
    fields = P.slack_body(status(status=state))["blocks"][1]["fields"]
    assert fields[0]["text"].startswith(f"*Status*\n{emoji} ")


def test_slack_texts_stay_within_block_kit_limits():
    body = P.slack_body(status(title="x" * 300, objective_title="<o>" * 1000))
    header = body["blocks"][0]["text"]["text"]
    assert len(header) == 150 and header.endswith("…")
    assert len(body["blocks"][2]["elements"][0]["text"]) == 2000
    fields = body["blocks"][1]["fields"]
    assert len(fields) <= 10 and all(len(f["text"]) <= 2000 for f in fields)


def test_registry_loads_the_webhook_writer():
    from okrsync.connectors.registry import build_writer as registry_build

    assert isinstance(registry_build("webhook", None, None, None, ConnectorOptions()), WebhookWriter)


@responses.activate
def test_slack_signed_when_secret_env_set():
    responses.post(SLACK_URL, body="ok")
    writer({"S": SECRET}).write(target(url=SLACK_URL, format="slack", secret_env="S"), status(), None)
    req = responses.calls[0].request
    assert P.verify(SECRET, req.body, req.headers["X-Okrsync-Timestamp"], req.headers["X-Okrsync-Signature"],
                    now=NOW)


# -- errors -------------------------------------------------------------------------------------
@responses.activate
def test_http_500_is_one_line_error_without_query_and_not_retried():
    responses.post(URL, status=500, body="internal\nboom")
    with pytest.raises(SourceError) as err:
        writer().write(target(url=URL + "?api_key=querysecret"), status(), None)
    assert str(err.value) == f"webhook {URL}: HTTP 500: internal boom"
    assert "querysecret" not in str(err.value)
    assert len(responses.calls) == 1  # a POST is not re-sent on 5xx


@responses.activate
def test_429_is_retried_with_retry_after_and_injected_sleep():
    responses.post(URL, status=429, headers={"Retry-After": "2"})
    responses.post(URL, status=200)
    sleeps: list[float] = []
    w = writer(sleeps=sleeps)
    w.write(target(), status(), None)
    assert len(responses.calls) == 2 and len(sleeps) == 1 and 2.0 <= sleeps[0] <= 2.3
    # the re-sent request is the same delivery
    assert responses.calls[0].request.body == responses.calls[1].request.body


@responses.activate
def test_errors_never_contain_the_secret_or_the_slack_token():
    echo = f"bad signature for secret {SECRET} at {SLACK_URL}"
    responses.post(SLACK_URL, status=400, body=echo)
    with pytest.raises(SourceError) as err:
        writer({"S": SECRET}).write(target(url=SLACK_URL, format="slack", secret_env="S"), status(), None)
    msg = str(err.value)
    assert SECRET not in msg and SLACK_TOKEN not in msg
    assert msg.startswith("webhook https://hooks.slack.com/services/T0001/B0002/***: HTTP 400: bad signature")


@responses.activate
def test_404_and_403_map_to_not_found_and_auth_errors():
    responses.post(SLACK_URL, status=404, body="no_service")
    responses.post(URL, status=403, body="forbidden")
    with pytest.raises(NotFoundError, match=r"HTTP 404: no_service$") as err:
        writer().write(target(url=SLACK_URL, format="slack"), status(), None)
    assert SLACK_TOKEN not in str(err.value)
    with pytest.raises(AuthError, match=r"^webhook https://hooks.example.com/okr/events: HTTP 403: forbidden$"):
        writer().write(target(), status(), None)


@responses.activate
def test_connection_refused_gives_up_without_leaking_the_token():
    # responses raises ConnectionError('Connection refused ...') for an unregistered URL
    sleeps: list[float] = []
    with pytest.raises(SourceError) as err:
        writer(sleeps=sleeps).write(target(url=SLACK_URL, format="slack"), status(), None)
    msg = str(err.value)
    assert SLACK_TOKEN not in msg and "\n" not in msg
    assert "gave up after 6 attempts" in msg and len(sleeps) == 5


@responses.activate
def test_redirect_is_not_followed():
    responses.post(URL, status=301, headers={"Location": "https://elsewhere.example.com/new?sig=1"})
    with pytest.raises(SourceError, match=r"HTTP 301 redirect to https://elsewhere.example.com/new not followed"):
        writer().write(target(), status(), None)
    assert len(responses.calls) == 1


def test_plain_http_to_a_remote_host_is_refused():
    with pytest.raises(SourceError, match="plain http:// is refused"):
        writer().write(target(url="http://hooks.example.com/x"), status(), None)


@responses.activate
def test_loopback_http_is_allowed():
    responses.post("http://127.0.0.1:8099/hook", status=200)
    writer().write(target(url="http://127.0.0.1:8099/hook"), status(), None)
    assert len(responses.calls) == 1


# -- plan -------------------------------------------------------------------------------------
def test_plan_lines():
    w = writer({"OKR_HOOK_SECRET": SECRET})
    lines = w.plan(target(url=URL + "?token=abcd1234", secret_env="OKR_HOOK_SECRET"), status())
    assert lines == [
        f"POST {URL} (json: JSON event okrsync.kr_status, signed (HMAC-SHA256 with $OKR_HOOK_SECRET))",
        "status on track: value 6 deploys/week of target 7 deploys/week, progress 50% (expected 45%)",
    ]
    assert SECRET not in "\n".join(lines)


def test_plan_slack_unsigned_and_missing_secret():
    assert writer().plan(target(url=SLACK_URL, format="slack"), status(overridden=True))[0] == (
        "POST https://hooks.slack.com/services/T0001/B0002/*** (slack: Slack message, unsigned)")
    line = writer({}).plan(target(secret_env="NOPE"), status())[0]
    assert line.endswith("NOPE is NOT set, the write would fail)")


def test_build_writer_uses_the_engine_options():
    opts = ConnectorOptions(sleep=lambda s: None)
    w = build_writer(None, None, None, opts)
    assert isinstance(w, WebhookWriter) and w.options is opts
    w.close()
