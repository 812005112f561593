"""Expiring credentials of the simulators: ServiceNow's /oauth_token.do and GitHub App installation tokens."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import parse_qsl

from .server import Request, Response, json_response


class TokenIssuer:
    """Access tokens with a lifetime: issued, checked on every request, and expired on demand by tests."""

    def __init__(self, prefix: str, ttl: float, clock: Callable[[], float] = time.time):
        self.prefix, self.ttl, self.clock = prefix, ttl, clock
        self._tokens: dict[str, float] = {}  # token -> expires at (epoch seconds)
        self._by_key: dict[Any, str] = {}
        self._lock = threading.Lock()
        self._expire_after: int | None = None
        self.issued = 0
        self.refused: list[str] = []  # expired tokens presented (the client should have renewed them)

    def issue(self, key: Any = None) -> tuple[str, float]:
        """A new token; with a `key` whose token is still valid, that token with a new expiry (ServiceNow reuses a
        valid access token and extends it, KB0791140 "Managing OAuth Tokens")."""
        with self._lock:
            now = self.clock()
            token = self._by_key.get(key) if key is not None else None
            if token is None or self._tokens.get(token, 0) <= now:
                token = self.prefix + secrets.token_urlsafe(24)
                self.issued += 1
            self._tokens[token] = now + self.ttl
            if key is not None:
                self._by_key[key] = token
            return token, now + self.ttl

    def check(self, token: str) -> bool | None:
        """True: valid; False: issued here but expired; None: not a token of this issuer."""
        with self._lock:
            expires = self._tokens.get(token)
            if expires is None:
                return None
            if expires <= self.clock():
                self.refused.append(token)
                return False
            if self._expire_after is not None:
                self._expire_after -= 1
                if self._expire_after <= 0:  # this request still passes; the next one meets an expired token
                    self._expire_after = None
                    now = self.clock()
                    for t in self._tokens:
                        self._tokens[t] = now
            return True

    def expire_all(self, after: int = 0) -> None:
        """Expire every token issued so far, now or once `after` more requests were accepted (a token dying mid-run
        however long the client believes it lives: revoked, or the server's clock ahead of the client's)."""
        with self._lock:
            if after > 0:
                self._expire_after = after
                return
            now = self.clock()
            for t in self._tokens:
                self._tokens[t] = now


# -- ServiceNow ----------------------------------------------------------------------------------------------------

class ServiceNowOAuth:
    """POST /oauth_token.do as ServiceNow documents it ("Resource owner password credential grant workflow", "Client
    credentials grant workflow", KB0778194): a form-encoded body (JSON is refused) with grant_type password (client_id,
    client_secret, username, password), client_credentials (client_id, client_secret; the instance property
    glide.oauth.inbound.client.credential.grant_type.enabled is on here) or refresh_token; the answer is
    {access_token, refresh_token, scope, token_type: Bearer, expires_in} (30 min by default, KB0791140), a refusal is
    401 {"error_description": "access_denied", "error": "server_error"} whatever went wrong."""

    def __init__(self, password: Callable[[str, str], bool], ttl: float = 1800.0):
        self.clients: dict[str, str] | None = None  # client_id -> client_secret (None: any non-empty pair)
        self.client_credentials = True
        self.password_ok = password  # (username, password) -> the user may sign in
        self.tokens = TokenIssuer("", ttl)
        self._refresh: dict[str, Any] = {}
        self.requests: list[dict[str, str]] = []  # the forms received, secrets included (tests only)

    @property
    def ttl(self) -> float:
        return self.tokens.ttl

    @ttl.setter
    def ttl(self, value: float) -> None:
        self.tokens.ttl = value

    def token_endpoint(self, req: Request) -> Response:
        ctype = (req.header("Content-Type") or "").split(";")[0].strip().lower()
        form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True)) \
            if ctype == "application/x-www-form-urlencoded" else {}
        self.requests.append(form)
        client, secret, grant = form.get("client_id", ""), form.get("client_secret", ""), form.get("grant_type")
        known = client and secret and (self.clients is None or self.clients.get(client) == secret)
        key: Any = None
        if grant == "password":
            user = form.get("username", "")
            key = (client, user) if known and user and self.password_ok(user, form.get("password", "")) else None
        elif grant == "client_credentials" and self.client_credentials:
            key = (client, None) if known else None
        elif grant == "refresh_token":
            key = self._refresh.get(form.get("refresh_token", "")) if known else None
        if key is None:
            return json_response(401, {"error_description": "access_denied", "error": "server_error"})
        token, expires = self.tokens.issue(key)
        refresh = secrets.token_urlsafe(24)
        self._refresh[refresh] = key
        return json_response(200, {"access_token": token, "refresh_token": refresh, "scope": "useraccount",
                                   "token_type": "Bearer", "expires_in": max(1, int(expires - time.time()) - 1)})


# -- GitHub Apps ---------------------------------------------------------------------------------------------------

GH_DOCS = "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app"


class GitHubApps:
    """GitHub Apps and their installations: POST /app/installations/{installation_id}/access_tokens.

    GitHub ("Generating a JSON Web Token (JWT) for a GitHub App"): the request carries `Authorization: Bearer <JWT>`
    signed RS256 with the App's private key, `iss` the App ID (or its client ID), `iat` in the past (60 s back is
    recommended against drift), `exp` no more than 10 minutes into the future. The answer ("Create an installation
    access token for an app") is 201 {token, expires_at, permissions, repository_selection}; tokens expire after one
    hour. A bad JWT is a 401, an installation that is not the App's a 404.
    """

    def __init__(self, ttl: float = 3600.0):
        self.apps: dict[str, str] = {}  # App ID (or client ID) -> public key PEM
        self.installations: dict[int, str] = {}  # installation id -> App ID
        self.tokens = TokenIssuer("ghs_", ttl)
        self.jwts: list[dict[str, Any]] = []  # the verified claims, for tests

    def register(self, app_id: int | str, public_key_pem: str | bytes, installation_id: int,
                 client_id: str | None = None) -> None:
        pem = public_key_pem.decode() if isinstance(public_key_pem, bytes) else public_key_pem
        self.apps[str(app_id)] = pem
        if client_id:
            self.apps[client_id] = pem
        self.installations[int(installation_id)] = str(app_id)

    def access_tokens(self, req: Request) -> Response:
        import jwt  # PyJWT (with cryptography) comes with PyGithub; the rest of the sandbox needs only the stdlib

        scheme, _, value = (req.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return _gh_error(401, "A JSON web token could not be decoded")
        try:
            unverified = jwt.decode(value.strip(), options={"verify_signature": False})
            issuer = str(unverified.get("iss", ""))
            key = self.apps.get(issuer)
            if key is None:
                return _gh_error(401, "A JSON web token could not be decoded")
            claims = jwt.decode(value.strip(), key, algorithms=["RS256"], options={"require": ["iat", "exp", "iss"]},
                                leeway=0)
        except jwt.ExpiredSignatureError:
            return _gh_error(401, "'Expiration time' claim ('exp') must be a numeric value representing the future "
                                  "time at which the assertion expires")
        except jwt.PyJWTError:
            return _gh_error(401, "A JSON web token could not be decoded")
        now = time.time()
        if claims["exp"] - claims["iat"] > 600 or claims["exp"] > now + 600 + 1:
            return _gh_error(401, "'Expiration time' claim ('exp') is too far in the future")
        if claims["iat"] > now + 1:
            return _gh_error(401, "'Issued at' claim ('iat') must be an Integer representing the time that the "
                                  "assertion was issued")
        self.jwts.append(claims)
        try:
            installation = int(req.params.get("installation_id", ""))
        except ValueError:
            installation = -1
        owner = self.installations.get(installation)
        if owner is None or self.apps.get(owner) != key:
            return _gh_error(404, "Not Found")
        token, expires = self.tokens.issue()
        at = datetime.fromtimestamp(int(expires), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return json_response(201, {"token": token, "expires_at": at,
                                   "permissions": {"issues": "write", "metadata": "read", "pull_requests": "read",
                                                   "deployments": "read", "contents": "read", "actions": "read"},
                                   "repository_selection": "all"})


def _gh_error(status: int, message: str) -> Response:
    return json_response(status, {"message": message, "documentation_url": GH_DOCS, "status": str(status)})
