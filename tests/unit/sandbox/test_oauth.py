"""The simulators' expiring credentials: ServiceNow /oauth_token.do and GitHub App installation tokens."""

import time
from datetime import datetime

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from okrsync.sandbox.oauth import TokenIssuer

HMAC = "a-shared-secret-instead-of-a-key-0123456789"
DENIED = {"error_description": "access_denied", "error": "server_error"}
FORM = {"grant_type": "password", "client_id": "cid", "client_secret": "csecret", "username": "bot", "password": "pw"}


@pytest.fixture
def sn(fresh):
    oauth = fresh.apps["servicenow"].oauth
    oauth.clients = {"cid": "csecret"}
    yield fresh.urls["servicenow"], oauth
    oauth.clients, oauth.ttl = None, 1800.0


@pytest.mark.parametrize("change,ok", [
    ({}, True),
    ({"client_secret": "wrong"}, False),
    ({"client_id": "other"}, False),
    ({"password": ""}, False),
    ({"username": ""}, False),
    ({"grant_type": "client_credentials", "username": "", "password": ""}, True),
    ({"grant_type": "authorization_code"}, False),
])
def test_servicenow_token_endpoint(sn, http, change, ok):
    url, oauth = sn
    r = http.post(f"{url}/oauth_token.do", data={**FORM, **change})
    if not ok:
        assert (r.status_code, r.json()) == (401, DENIED)
        return
    body = r.json()
    assert r.status_code == 200 and set(body) == {"access_token", "refresh_token", "scope", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and 1790 <= body["expires_in"] <= 1800
    table = f"{url}/api/now/table/incident"
    assert http.get(table, params={"sysparm_limit": 1},
                    headers={"Authorization": f"Bearer {body['access_token']}"}).status_code == 200


def test_servicenow_refuses_json_reuses_a_valid_token_and_expires_it(sn, http):
    url, oauth = sn
    assert http.post(f"{url}/oauth_token.do", json=FORM).status_code == 401  # form-encoded only
    first = http.post(f"{url}/oauth_token.do", data=FORM).json()
    again = http.post(f"{url}/oauth_token.do", data=FORM).json()
    assert again["access_token"] == first["access_token"]  # KB0791140: a valid token comes back, extended
    refreshed = http.post(f"{url}/oauth_token.do", data={"grant_type": "refresh_token", "client_id": "cid",
                                                          "client_secret": "csecret",
                                                          "refresh_token": first["refresh_token"]})
    assert refreshed.status_code == 200
    table = f"{url}/api/now/table/incident"
    bearer = {"Authorization": f"Bearer {first['access_token']}"}
    oauth.tokens.expire_all(after=1)
    assert http.get(table, params={"sysparm_limit": 1}, headers=bearer).status_code == 200
    r = http.get(table, params={"sysparm_limit": 1}, headers=bearer)
    assert r.status_code == 401 and r.json()["error"]["message"] == "User Not Authenticated"
    fresh_token = http.post(f"{url}/oauth_token.do", data=FORM).json()["access_token"]
    assert fresh_token != first["access_token"]


def test_token_issuer_lifetimes():
    clock = [100.0]
    issuer = TokenIssuer("t_", 10, clock=lambda: clock[0])
    token, expires = issuer.issue()
    assert expires == 110 and issuer.check(token) is True and issuer.check("other") is None
    clock[0] = 110
    assert issuer.check(token) is False and issuer.refused == [token]


_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC = _KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign(key=_KEY, alg="RS256", **claims):
    now = int(time.time())
    return jwt.encode({"iat": now - 60, "exp": now + 540, "iss": "99", **claims}, key, algorithm=alg)


@pytest.mark.parametrize("token,installation,status,message", [
    (lambda: sign(), 5, 201, None),
    (lambda: sign(iss="Iv1.client"), 5, 201, None),  # the client ID is an issuer too
    (lambda: sign(key=_OTHER), 5, 401, "A JSON web token could not be decoded"),
    (lambda: sign(iss="98"), 5, 401, "A JSON web token could not be decoded"),
    (lambda: sign(exp=int(time.time()) + 1200), 5, 401, "'Expiration time' claim ('exp') is too far in the future"),
    (lambda: sign(exp=int(time.time()) - 5), 5, 401, "'Expiration time' claim ('exp') must be a numeric value "
                                                     "representing the future time at which the assertion expires"),
    (lambda: sign(alg="HS256", key=HMAC), 5, 401, "A JSON web token could not be decoded"),
    (lambda: "not-a-jwt", 5, 401, "A JSON web token could not be decoded"),
    (lambda: sign(), 6, 404, "Not Found"),
])
def test_github_installation_tokens(fresh, http, token, installation, status, message):
    apps = fresh.apps["github"].app_auth
    apps.register(99, PUBLIC, installation_id=5, client_id="Iv1.client")
    url = f"{fresh.urls['github']}/app/installations/{installation}/access_tokens"
    r = http.post(url, headers={"Authorization": f"Bearer {token()}", "Accept": "application/vnd.github+json"})
    assert r.status_code == status
    if message:
        assert r.json()["message"] == message
        return
    body = r.json()
    assert body["token"].startswith("ghs_") and body["expires_at"].endswith("Z")
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")).timestamp()
    assert time.time() + 3590 <= expires <= time.time() + 3601  # "expire after one hour"
    repo = f"{fresh.urls['github']}/repos/acme/web"
    assert http.get(repo, headers={"Authorization": f"Bearer {body['token']}"}).status_code == 200
    apps.tokens.expire_all()
    assert http.get(repo, headers={"Authorization": f"Bearer {body['token']}"}).status_code == 401
