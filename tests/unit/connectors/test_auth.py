"""Auth modes over `responses`: ServiceNow OAuth, GitHub App installation tokens, PagerDuty OAuth; renewal."""

import time
from datetime import datetime, timezone
from urllib.parse import parse_qsl

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from okrsync.config.settings import Settings, SourceCredentials
from okrsync.config.sources import GitHubSource, PagerDutySource, ServiceNowSource
from okrsync.connectors.auth import credentials_problem
from okrsync.connectors.base import AuthError, ConnectorOptions, redact
from okrsync.connectors.github.connector import make_client
from okrsync.connectors.pagerduty.connector import build as build_pd
from okrsync.connectors.servicenow.connector import build as build_sn

SN = "https://acme.service-now.com"
TOKEN_URL = f"{SN}/oauth_token.do"
TABLE = f"{SN}/api/now/table/incident"
GH = "https://api.github.com"
SECRET = "cl13nt-s3cret-value"


class Clock:
    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def sn(grant="password", clock=None, **cred):
    cred = {"client_id": "okr-client", "client_secret": SECRET, "user": "okr.bot", "password": "pw-9f2e", **cred}
    cfg = ServiceNowSource(type="servicenow", url=SN, auth="oauth", grant=grant, max_attempts=2, retry_backoff=0)
    return build_sn("sn", cfg, SourceCredentials(**cred), ConnectorOptions(sleep=lambda s: None, clock=clock))


def token_reply(*tokens, expires_in=1800):
    for t in tokens:
        responses.post(TOKEN_URL, json={"access_token": t, "refresh_token": "r-" + t, "scope": "useraccount",
                                        "token_type": "Bearer", "expires_in": expires_in})


def calls(url):
    return [c for c in responses.calls if c.request.url.split("?")[0] == url]


# -- ServiceNow OAuth ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("grant,form", [
    ("password", {"grant_type": "password", "client_id": "okr-client", "client_secret": SECRET,
                  "username": "okr.bot", "password": "pw-9f2e"}),
    ("client_credentials", {"grant_type": "client_credentials", "client_id": "okr-client", "client_secret": SECRET}),
])
@responses.activate
def test_servicenow_oauth_posts_the_documented_form_and_sends_the_bearer_token(grant, form):
    token_reply("sn-access-1")
    responses.get(TABLE, json={"result": []})
    conn = sn(grant)
    conn.client.get("api/now/table/incident")
    (post,) = calls(TOKEN_URL)
    assert post.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(post.request.body)) == form
    assert "Authorization" not in post.request.headers  # the client authenticates in the form only
    (get,) = calls(TABLE)
    assert get.request.headers["Authorization"] == "Bearer sn-access-1"


@pytest.mark.parametrize("expires_in,elapsed,tokens", [
    (1800, 0, 1), (1800, 1499, 1), (1800, 1500, 2),  # renewed 300 s before the end
    (1800, 1800, 2), (1800, 4000, 2),  # (one renewal per request: the new token is fresh)
    (60, 44, 1), (60, 45, 2),  # a short-lived token: a quarter of its lifetime ahead
])
@responses.activate
def test_servicenow_token_is_renewed_before_it_expires(expires_in, elapsed, tokens):
    clock = Clock()
    token_reply("tok-a", "tok-b", expires_in=expires_in)
    responses.get(TABLE, json={"result": []})
    conn = sn(clock=clock)
    conn.client.get("api/now/table/incident")
    clock.t += elapsed
    conn.client.get("api/now/table/incident")
    assert len(calls(TOKEN_URL)) == tokens
    sent = [c.request.headers["Authorization"] for c in calls(TABLE)]
    assert sent == ["Bearer tok-a", "Bearer tok-b" if tokens == 2 else "Bearer tok-a"]


@responses.activate
def test_a_401_mid_run_renews_the_token_once_and_resends():
    token_reply("tok-a", "tok-b")
    responses.get(TABLE, json={"result": [{"n": 1}]})
    responses.get(TABLE, status=401, json={"error": {"message": "User Not Authenticated"}})
    responses.get(TABLE, json={"result": [{"n": 2}]})
    conn = sn()
    assert conn.client.get("api/now/table/incident") == {"result": [{"n": 1}]}
    assert conn.client.get("api/now/table/incident") == {"result": [{"n": 2}]}
    assert [c.request.headers["Authorization"] for c in calls(TABLE)] == ["Bearer tok-a", "Bearer tok-a",
                                                                         "Bearer tok-b"]
    assert len(calls(TOKEN_URL)) == 2
    assert conn.requests_made == 5  # two token requests, three table requests


@responses.activate
def test_a_second_401_is_reported_not_renewed_again():
    token_reply("tok-a", "tok-b", "tok-c")
    responses.get(TABLE, status=401, json={"error": {"message": "User Not Authenticated"}})
    conn = sn()
    with pytest.raises(AuthError) as err:
        conn.client.get("api/now/table/incident")
    assert len(calls(TOKEN_URL)) == 2 and len(calls(TABLE)) == 2
    assert str(err.value) == (f"sn: authentication failed for {SN} (check OKRSYNC_SOURCES__SN__CLIENT_ID, "
                              "OKRSYNC_SOURCES__SN__CLIENT_SECRET, OKRSYNC_SOURCES__SN__USER, "
                              "OKRSYNC_SOURCES__SN__PASSWORD)")


@pytest.mark.parametrize("status,body,detail", [
    (401, {"error_description": "access_denied", "error": "server_error"}, ": server_error; access_denied"),
    (400, {"error": "invalid_request"}, ": invalid_request"),
    (200, {"error": "no token here"}, ": no token here"),
    (401, None, ""),
])
@responses.activate
def test_a_refused_token_request_is_one_line_naming_the_variables(status, body, detail):
    if body is None:
        responses.post(TOKEN_URL, status=status, body=f"<html>{SECRET}</html>")
    else:
        responses.post(TOKEN_URL, status=status, json=body if status != 200 else {**body, "echo": SECRET})
    conn = sn()
    with pytest.raises(AuthError) as err:
        conn.client.get("api/now/table/incident")
    assert str(err.value) == (f"sn: the OAuth token request was refused (HTTP {status}{detail}; check "
                              "OKRSYNC_SOURCES__SN__CLIENT_ID, OKRSYNC_SOURCES__SN__CLIENT_SECRET, "
                              "OKRSYNC_SOURCES__SN__USER, OKRSYNC_SOURCES__SN__PASSWORD)")
    assert calls(TABLE) == []


@responses.activate
def test_a_5xx_from_the_token_endpoint_goes_through_the_one_retry_layer():
    responses.post(TOKEN_URL, status=503, body="busy")
    token_reply("tok-a")
    responses.get(TABLE, json={"result": []})
    conn = sn()
    conn.client.get("api/now/table/incident")
    assert len(calls(TOKEN_URL)) == 2 and conn.client.retries == 1


@responses.activate
def test_minted_tokens_and_new_secrets_are_redacted():
    token_reply("sn-minted-token-7781")
    responses.get(TABLE, json={"result": []})
    sn().client.get("api/now/table/incident")
    assert redact("sent sn-minted-token-7781 and more", []) == "sent *** and more"
    settings = Settings(sources={"sn": SourceCredentials(client_secret=SECRET, private_key=PEM)})
    values = settings.secret_values()
    assert SECRET in values and PEM in values and "sn-minted-token-7781" in values
    assert redact(PEM.splitlines()[3], values) == "***"  # one line of the key is a secret too


# -- PagerDuty -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,header", [
    ({}, "Token token=pd-secret-1"),
    ({"auth": "api_key"}, "Token token=pd-secret-1"),
    ({"auth": "oauth"}, "Bearer pd-secret-1"),
])
@responses.activate
def test_pagerduty_sends_an_api_key_or_an_oauth_token(mode, header):
    responses.get("https://api.pagerduty.com/abilities", json={"abilities": []})
    cfg = PagerDutySource(type="pagerduty", **mode)
    conn = build_pd("pd", cfg, SourceCredentials(token="pd-secret-1"), ConnectorOptions())
    conn.client.get("abilities")
    assert responses.calls[0].request.headers["Authorization"] == header


# -- GitHub App ------------------------------------------------------------------------------------------------
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = _KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                         serialization.NoEncryption()).decode()
PUBLIC = _KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def gh(clock=None, **cfg):
    config = GitHubSource(type="github", repos=["acme/web"], auth="app", app_id=123, installation_id=42,
                          max_attempts=2, retry_backoff=0, **cfg)
    return make_client("gh", config, SourceCredentials(private_key=PEM),
                       ConnectorOptions(sleep=lambda s: None), clock=clock)


def app_tokens(*tokens, lifetime=3600):
    seen = []

    def reply(request):
        claims = jwt.decode(request.headers["Authorization"].removeprefix("Bearer "), PUBLIC, algorithms=["RS256"])
        seen.append(claims)
        token = tokens[len(seen) - 1]
        at = datetime.fromtimestamp(int(time.time()) + lifetime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return 201, {}, f'{{"token": "{token}", "expires_at": "{at}", "permissions": {{}}}}'

    responses.add_callback(responses.POST, f"{GH}/app/installations/42/access_tokens", callback=reply)
    return seen


@responses.activate
def test_github_app_mints_an_installation_token_with_a_signed_jwt_and_uses_it():
    seen = app_tokens("ghs_first")
    responses.get(f"{GH}/repos/acme/web", json={"full_name": "acme/web"})
    client = gh()
    assert client.get("/repos/acme/web", what="repository acme/web") == {"full_name": "acme/web"}
    (claims,) = seen
    assert claims["iss"] == "123" and claims["exp"] - claims["iat"] <= 600 and claims["iat"] <= time.time()
    assert responses.calls[1].request.headers["Authorization"] == "Bearer ghs_first"
    assert redact("leaked ghs_first", []) == "leaked ***"


@pytest.mark.parametrize("elapsed,tokens", [(0, 1), (3299, 1), (3301, 2)])
@responses.activate
def test_github_installation_token_is_renewed_before_its_hour_ends(elapsed, tokens):
    clock = Clock(time.time())
    app_tokens("ghs_a", "ghs_b")
    responses.get(f"{GH}/repos/acme/web", json={})
    client = gh(clock=clock)
    client.get("/repos/acme/web", what="repository acme/web")
    clock.t += elapsed
    client.get("/repos/acme/web", what="repository acme/web")
    minted = [c for c in responses.calls if c.request.method == "POST"]
    assert len(minted) == tokens
    assert responses.calls[-1].request.headers["Authorization"] == f"Bearer ghs_{'b' if tokens == 2 else 'a'}"


@responses.activate
def test_github_bad_credentials_mid_run_renew_once():
    app_tokens("ghs_a", "ghs_b")
    responses.get(f"{GH}/repos/acme/web", status=401, json={"message": "Bad credentials"})
    responses.get(f"{GH}/repos/acme/web", json={"ok": 1})
    assert gh().get("/repos/acme/web", what="repository acme/web") == {"ok": 1}
    assert [c.request.headers["Authorization"] for c in responses.calls if c.request.method == "GET"] == [
        "Bearer ghs_a", "Bearer ghs_b"]


@pytest.mark.parametrize("status,message", [(401, "A JSON web token could not be decoded"), (404, "Not Found")])
@responses.activate
def test_github_refusing_the_jwt_is_one_line(status, message):
    responses.post(f"{GH}/app/installations/42/access_tokens", status=status, json={"message": message})
    with pytest.raises(AuthError) as err:
        gh().get("/repos/acme/web", what="repository acme/web")
    assert str(err.value) == (f"gh: GitHub refused an installation token for installation 42 (HTTP {status}: "
                              f"{message}; check OKRSYNC_SOURCES__GH__APP_ID, OKRSYNC_SOURCES__GH__INSTALLATION_ID "
                              "and OKRSYNC_SOURCES__GH__PRIVATE_KEY)")


@responses.activate
def test_a_malformed_private_key_is_named_never_shown():
    config = GitHubSource(type="github", repos=["acme/web"], auth="app", app_id=123, installation_id=42)
    bad = "-----BEGIN RSA PRIVATE KEY-----\nnot-a-key-at-all-1234567890\n-----END RSA PRIVATE KEY-----"
    with pytest.raises(AuthError) as err:
        make_client("gh", config, SourceCredentials(private_key=bad), ConnectorOptions())
    assert str(err.value) == ("gh: the GitHub App needs a PEM private key (what OKRSYNC_SOURCES__GH__PRIVATE_KEY "
                              "holds is not one; use the .pem file GitHub generated)")
    # a key that is no RSA key cannot sign RS256: said when the first token is minted, the key never shown
    ec = ec_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    client = make_client("gh", config, SourceCredentials(private_key=ec), ConnectorOptions())
    with pytest.raises(AuthError) as err:
        client.get("/repos/acme/web", what="repository acme/web")
    assert str(err.value).startswith("gh: cannot sign the GitHub App's JWT with the private key (")
    assert str(err.value).endswith("; check OKRSYNC_SOURCES__GH__APP_ID, OKRSYNC_SOURCES__GH__INSTALLATION_ID and "
                                   "OKRSYNC_SOURCES__GH__PRIVATE_KEY)")
    assert ec.splitlines()[1] not in str(err.value) and len(responses.calls) == 0


def test_the_private_key_may_come_from_a_file(tmp_path):
    path = tmp_path / "app.pem"
    path.write_text(PEM)
    cred = SourceCredentials(private_key_file=str(path))
    assert cred.private_key_pem() == PEM.strip()
    assert PEM.strip() in Settings(sources={"gh": cred}).secret_values()


# -- the credential check (validate, sync): one line naming the variable to set ---------------------------------
@pytest.mark.parametrize("cfg,cred,expected", [
    (dict(type="pagerduty", auth="oauth"), {},
     "pd: no OAuth access token: set OKRSYNC_SOURCES__PD__TOKEN (auth: oauth sends it as a Bearer token)"),
    (dict(type="pagerduty", auth="oauth"), dict(token="t0k3n"), None),
    (dict(type="servicenow", url=SN, auth="oauth"), dict(client_id="c", user="u", password="p"),
     "pd: no credentials for OAuth (password grant): set OKRSYNC_SOURCES__PD__CLIENT_SECRET"),
    (dict(type="servicenow", url=SN, auth="oauth", grant="client_credentials"), {},
     "pd: no credentials for OAuth (client_credentials grant): set OKRSYNC_SOURCES__PD__CLIENT_ID, "
     "OKRSYNC_SOURCES__PD__CLIENT_SECRET"),
    (dict(type="servicenow", url=SN, auth="oauth", grant="client_credentials", client_id="c"),
     dict(client_secret="s3cr"), None),
    (dict(type="servicenow", url=SN, auth="oauth"), dict(client_id="c", client_secret="s", user="u"),
     "pd: no credentials for OAuth (password grant): set OKRSYNC_SOURCES__PD__PASSWORD"),
    (dict(type="servicenow", url=SN, auth="basic"), dict(token="t0k3n"),
     "pd: no credentials for basic auth: set OKRSYNC_SOURCES__PD__USER and OKRSYNC_SOURCES__PD__PASSWORD"),
    (dict(type="github", repos=["a/b"], auth="app", app_id=1, installation_id=2), {},
     "pd: the GitHub App needs the private key in OKRSYNC_SOURCES__PD__PRIVATE_KEY (or a PEM file named by "
     "OKRSYNC_SOURCES__PD__PRIVATE_KEY_FILE)"),
    (dict(type="github", repos=["a/b"], auth="app"), dict(private_key=PEM),
     "pd: the GitHub App needs app_id: in the source or OKRSYNC_SOURCES__PD__APP_ID, installation_id: in the "
     "source or OKRSYNC_SOURCES__PD__INSTALLATION_ID"),
    (dict(type="github", repos=["a/b"], auth="app"), dict(app_id="1", installation_id="2", private_key=PEM), None),
    (dict(type="github", repos=["a/b"], auth="app", app_id=1), dict(installation_id="acme", private_key=PEM),
     "pd: the GitHub App needs a numeric installation_id: in the source or OKRSYNC_SOURCES__PD__INSTALLATION_ID"),
    (dict(type="github", repos=["a/b"], auth="app", app_id="Iv1.abc", installation_id=2), dict(private_key="k3y"),
     "pd: the GitHub App needs a PEM private key (what OKRSYNC_SOURCES__PD__PRIVATE_KEY holds is not one; use the "
     ".pem file GitHub generated)"),
    (dict(type="github", repos=["a/b"], auth="app", app_id=1, installation_id=2),
     dict(private_key_file="/nonexistent/app.pem"),
     "pd: the GitHub App needs a readable private key (OKRSYNC_SOURCES__PD__PRIVATE_KEY_FILE names no readable file)"),
])
def test_credentials_problem_per_auth_mode(cfg, cred, expected):
    model = {"pagerduty": PagerDutySource, "servicenow": ServiceNowSource, "github": GitHubSource}[cfg["type"]]
    assert credentials_problem("pd", model(**cfg), SourceCredentials(**cred)) == expected
