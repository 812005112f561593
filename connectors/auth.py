"""Bearer tokens that expire (ServiceNow OAuth, GitHub App installations): minted, renewed early and after a 401."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, Callable
from urllib.parse import urlparse

import requests
from requests.auth import AuthBase

from okrsync.config.settings import SourceCredentials, env_name, remember_secret
from okrsync.config.sources import is_loopback

from .base import AuthError

# Renew this long before the expiry the server announced (at most a quarter of the token's lifetime): a request
# sent just before the end must not arrive just after it. ServiceNow tokens live 30 min, GitHub's 1 h.
RENEW_MARGIN = 300.0


class TokenRefused(AuthError):
    """No token could be minted (refused, or the key cannot sign): already one line naming the variables."""


Mint = Callable[[], "tuple[str, float | None]"]  # -> (token, expires at in epoch seconds, None: not announced)


class NoAuth(AuthBase):
    """The token request itself carries no session credentials (requests would otherwise apply the session's)."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


NO_AUTH = NoAuth()


class RenewingBearer(AuthBase):
    """`Authorization: Bearer <token>` on every request of one HttpClient (set as its session's auth).

    The token is minted on first use and again `RENEW_MARGIN` before it expires. A 401 means the server no longer
    takes it (revoked, or our clock is behind): the token is renewed once and the request sent once more with the
    new one, the way requests' digest auth answers its 401 challenge; a second 401 is the caller's to report.
    Concurrent requests share one renewal. Every token minted is redacted from messages and logs.
    """

    def __init__(self, mint: Mint, clock: Callable[[], float], margin: float = RENEW_MARGIN,
                 on_resend: Callable[[], None] | None = None):
        self.mint, self.clock, self.margin, self.on_resend = mint, clock, margin, on_resend
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires: float | None = None
        self._minted_at = 0.0
        self.minted = 0

    def _renew(self) -> None:
        started = self.clock()
        token, expires = self.mint()
        remember_secret(token)
        self._token, self._expires, self._minted_at = token, expires, started
        self.minted += 1

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._expiring():
                self._renew()
            assert self._token is not None
            return self._token

    def _expiring(self) -> bool:
        if self._expires is None:
            return False
        lifetime = max(0.0, self._expires - self._minted_at)
        return self.clock() >= self._expires - min(self.margin, lifetime / 4)

    def renewed_after_401(self, sent: str) -> str:
        """The token to resend with after `sent` got a 401 (renewed unless another request already did)."""
        with self._lock:
            if self._token is None or self._token == sent:
                self._renew()
            assert self._token is not None
            return self._token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token()}"
        r.register_hook("response", self._on_response)  # type: ignore[no-untyped-call]  # unannotated in types-requests
        return r

    def _on_response(self, resp: requests.Response, **kwargs: Any) -> requests.Response:
        if resp.status_code != 401 or resp.request is None:
            return resp
        sent = str(resp.request.headers.get("Authorization") or "").removeprefix("Bearer ")
        token = self.renewed_after_401(sent)
        resp.content  # noqa: B018 - read the body so the connection goes back to the pool
        resp.close()
        prep = resp.request.copy()
        prep.headers["Authorization"] = f"Bearer {token}"
        # the response of this send runs no hooks: a second 401 is not renewed again
        again = resp.connection.send(prep, **kwargs)
        again.history.append(resp)
        again.request = prep
        if self.on_resend:
            self.on_resend()
        return again


def attach(http: Any, mint: Mint) -> RenewingBearer:
    """Make `http` (an HttpClient) send renewing bearer tokens; the token requests go through it too."""
    auth = RenewingBearer(mint, http.clock, on_resend=lambda: _count(http))
    http.session.auth = auth
    return auth


def _count(http: Any) -> None:
    with http._lock:
        http.requests_made += 1


def _detail(resp: requests.Response, *keys: str) -> str:
    body = _json(resp)
    return "; ".join(str(body[k]) for k in keys if body.get(k))[:200]


# -- ServiceNow OAuth --------------------------------------------------------------------------------------------

def servicenow_oauth(name: str, config: Any, credentials: SourceCredentials) -> tuple[dict[str, str], str]:
    """The form of `POST /oauth_token.do` for the source's grant, and the variables to check when it fails.

    ServiceNow: the request is form-encoded (application/x-www-form-urlencoded), grant_type password with
    client_id, client_secret, username and password ("Resource owner password credential grant workflow"), or
    client_credentials with client_id and client_secret ("Client credentials grant workflow", an instance property
    away on newer releases); the answer holds access_token and expires_in (seconds; 30 min by default, KB0791140).
    """
    form = {"grant_type": config.grant, "client_id": credentials.client_id or config.client_id or "",
            "client_secret": credentials.client_secret.get_secret_value() if credentials.client_secret else ""}
    names = [env_name(name, "client_id"), env_name(name, "client_secret")]
    if config.grant == "password":
        form["username"] = credentials.user or config.user or ""
        form["password"] = credentials.password.get_secret_value() if credentials.password else ""
        names += [env_name(name, "user"), env_name(name, "password")]
    return form, ", ".join(names)


def servicenow_problem(name: str, config: Any, credentials: SourceCredentials) -> str | None:
    """One line naming the variables an OAuth ServiceNow source still needs; None when it has them all."""
    form, _ = servicenow_oauth(name, config, credentials)
    var = {"client_id": "client_id", "client_secret": "client_secret", "username": "user", "password": "password"}
    missing = [env_name(name, var[k]) for k, v in form.items() if k in var and not v]
    if not missing:
        return None
    return f"{name}: no credentials for OAuth ({config.grant} grant): set {', '.join(missing)}"


def servicenow_mint(http: Any, form: dict[str, str], hint: str) -> Mint:
    def mint() -> tuple[str, float | None]:
        started = http.clock()
        resp = http.request("POST", "oauth_token.do", data=form, auth=NO_AUTH, retry_unsafe=True,
                            headers={"Accept": "application/json"})
        body = _json(resp)
        token = body.get("access_token") if resp.status_code == 200 else None
        if not token:
            detail = _detail(resp, "error", "error_description")
            raise TokenRefused(http.redact(f"{http.source}: the OAuth token request was refused (HTTP "
                                           f"{resp.status_code}{': ' + detail if detail else ''}; check {hint})"))
        try:
            expires_in = float(body.get("expires_in") or 0)
        except (TypeError, ValueError):
            expires_in = 0.0
        return str(token), (started + expires_in if expires_in > 0 else None)
    return mint


# -- GitHub App installations ------------------------------------------------------------------------------------

def github_app(name: str, config: Any, credentials: SourceCredentials) -> tuple[str, str, int]:
    """(app id, private key PEM, installation id) of a source with `auth: app`; AuthError naming what is missing."""
    app_id = str(credentials.app_id or config.app_id or "")
    installation = str(credentials.installation_id or config.installation_id or "")
    pem = credentials.private_key_pem()
    problem = app_problem(name, config, credentials)
    if problem:
        raise AuthError(problem)
    return app_id, pem, int(installation)


def app_problem(name: str, config: Any, credentials: SourceCredentials) -> str | None:
    """One line naming what a GitHub App source lacks and the variables to set; None when it has it all."""
    missing = []
    if not (credentials.app_id or config.app_id):
        missing.append(f"app_id: in the source or {env_name(name, 'app_id')}")
    installation = str(credentials.installation_id or config.installation_id or "")
    if not installation.isdigit():
        missing.append(f"{'a numeric ' if installation else ''}installation_id: in the source or "
                       f"{env_name(name, 'installation_id')}")
    if credentials.private_key is None and not credentials.private_key_file:
        missing.append(f"the private key in {env_name(name, 'private_key')} (or a PEM file named by "
                       f"{env_name(name, 'private_key_file')})")
    elif not credentials.private_key_pem():
        missing.append(f"a readable private key ({env_name(name, 'private_key_file')} names no readable file)")
    elif not _is_private_key(credentials.private_key_pem()):
        where = env_name(name, "private_key" if credentials.private_key is not None else "private_key_file")
        missing.append(f"a PEM private key (what {where} holds is not one; use the .pem file GitHub generated)")
    if not missing:
        return None
    return f"{name}: the GitHub App needs {', '.join(missing)}"


def _is_private_key(pem: str) -> bool:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        return False
    return True


def github_app_mint(http: Any, app_id: str, pem: str, installation_id: int, hint: str) -> Mint:
    """Installation tokens (1 h): PyGithub signs the App's JWT, our HttpClient exchanges it.

    GitHub: "Generating an installation access token for a GitHub App": POST /app/installations/{id}/access_tokens
    with `Authorization: Bearer <JWT>` (RS256, iss = the App, at most 10 minutes) -> 201 {token, expires_at}.
    """
    from github import Auth  # PyGithub: only the JWT (iat 60 s back, 5 min), never its HTTP layer

    app = Auth.AppAuth(app_id, pem)

    def mint() -> tuple[str, float | None]:
        try:
            jwt = app.create_jwt()
        except Exception as exc:  # a malformed key: say which variable, never the key
            raise TokenRefused(f"{http.source}: cannot sign the GitHub App's JWT with the private key "
                               f"({type(exc).__name__}; check {hint})") from None
        remember_secret(jwt)
        resp = http.request("POST", f"app/installations/{installation_id}/access_tokens", auth=NO_AUTH,
                            retry_unsafe=True, headers={"Authorization": f"Bearer {jwt}"})
        body = _json(resp)
        if resp.status_code != 201 or not body.get("token"):
            detail = _detail(resp, "message")
            raise TokenRefused(http.redact(f"{http.source}: GitHub refused an installation token for installation "
                                           f"{installation_id} (HTTP {resp.status_code}"
                                           f"{': ' + detail if detail else ''}; check {hint})"))
        try:
            expires = datetime.fromisoformat(str(body.get("expires_at")).replace("Z", "+00:00")).timestamp()
        except ValueError:
            expires = http.clock() + 3600.0  # "installation access tokens expire after one hour"
        return str(body["token"]), expires
    return mint


def _json(resp: requests.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}  # refused below, with the status
    return body if isinstance(body, dict) else {}


# Credential checks by source type, made before any request: one line naming the variables to set, or None.
def _servicenow_problem(name: str, config: Any, creds: SourceCredentials) -> str | None:
    if config.auth == "oauth":
        return servicenow_problem(name, config, creds)
    token, mode = _token(creds), config.auth
    if (token and mode != "basic") or (creds.password and (creds.user or config.user) and mode != "token"):
        return None
    if mode == "basic":
        return f"{name}: no credentials for basic auth: set {env_name(name, 'user')} and {env_name(name, 'password')}"
    if mode == "token":
        return _no_token(name)
    return (f"{name}: no credentials: set {env_name(name, 'token')}, or {env_name(name, 'user')} "
            f"and {env_name(name, 'password')}")


def _github_problem(name: str, config: Any, creds: SourceCredentials) -> str | None:
    if config.auth == "app":
        return app_problem(name, config, creds)
    if _token(creds) or (config.url and is_loopback(urlparse(config.url).hostname)):
        return None  # the local sandbox accepts anonymous reads
    return _no_token(name)


def _pagerduty_problem(name: str, config: Any, creds: SourceCredentials) -> str | None:
    if _token(creds):
        return None
    if config.auth == "oauth":
        return f"{name}: no OAuth access token: set {env_name(name, 'token')} (auth: oauth sends it as a Bearer token)"
    return _no_token(name)


def _jira_problem(name: str, config: Any, creds: SourceCredentials) -> str | None:
    return None if _token(creds) else _no_token(name)  # Cloud's email is checked on the first call (serverInfo)


def _token(creds: SourceCredentials) -> str:
    return creds.token.get_secret_value() if creds.token else ""


def _no_token(name: str) -> str:
    return f"{name}: no token: set {env_name(name, 'token')}"


CREDENTIAL_CHECKS: dict[str, Callable[[str, Any, SourceCredentials], str | None]] = {
    "jira": _jira_problem,
    "github": _github_problem,
    "servicenow": _servicenow_problem,
    "pagerduty": _pagerduty_problem,
}


def credentials_problem(name: str, config: Any, creds: SourceCredentials) -> str | None:
    """A one-line message when a source cannot authenticate at all (checked before any request)."""
    return CREDENTIAL_CHECKS[config.type](name, config, creds)
