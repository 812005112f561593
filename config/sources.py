"""Source settings in the workspace file: one model per system type."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Literal, Self
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .periods import parse_duration


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """Refuse plain http:// except for loopback hosts; return the URL without a trailing /."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"expected an http(s) URL, got {url!r}")
    if parsed.scheme == "http" and not is_loopback(parsed.hostname):
        raise ValueError(f"plain http:// is refused for {parsed.hostname} "
                         "(use https://; http is allowed for loopback only)")
    if parsed.username or parsed.password:
        raise ValueError("credentials do not belong in the URL: set them in the environment")
    return url.rstrip("/")


class SourceBase(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: str | None = Field(default=None, alias="base_url")
    # First run reads from here (default per source type, see DESIGN §6).
    sync_from: date | datetime | None = None
    lookback: str = "10m"
    timeout: float = 30.0  # read timeout, seconds
    connect_timeout: float = 10.0
    max_attempts: int = Field(default=6, ge=1, le=20)
    retry_backoff: float = Field(default=1.0, ge=0, le=60)  # first backoff step, seconds (doubles, with jitter)
    ca_bundle: str | None = None  # a CA bundle file for private PKI (TLS verification stays on)
    page_size: int | None = Field(default=None, ge=1)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else check_url(v)

    @field_validator("lookback")
    @classmethod
    def _lookback(cls, v: str) -> str:
        parse_duration(v)
        return v

    @property
    def lookback_delta(self) -> timedelta:
        return parse_duration(self.lookback)

    def api_url(self) -> str:
        return self.url or SOURCES[self.type].default_url  # type: ignore[attr-defined]


class JiraSource(SourceBase):
    type: Literal["jira"]
    # The API gateway for scoped API tokens and service accounts, https://api.atlassian.com/ex/jira/<cloudId>;
    # requests go there, links keep using url (the site).
    gateway: str | None = Field(default=None, alias="api_url")
    email: str | None = None  # Cloud basic auth user (or OKRSYNC_SOURCES__<NAME>__EMAIL)
    projects: list[str] = Field(default_factory=list)
    jql: str | None = None  # extra filter ANDed to the sync query
    deployment: Literal["auto", "cloud", "server"] = "auto"
    story_points_field: str | None = None  # field id or name; discovered when omitted
    sprint_field: str | None = None
    epic_link_field: str | None = None
    fields: list[str] = Field(default_factory=list)  # extra fields (ids or names) kept in raw for where: selectors

    @field_validator("gateway")
    @classmethod
    def _gateway(cls, v: str | None) -> str | None:
        return None if v is None else check_url(v)

    @model_validator(mode="after")
    def _needs_url(self) -> Self:
        if not self.url:
            raise ValueError("a jira source needs url: https://<site>.atlassian.net (or your Data Center URL)")
        return self

    def api_url(self) -> str:
        return self.gateway or self.url or ""


class GitHubSource(SourceBase):
    type: Literal["github"]
    repos: list[str] = Field(min_length=1)
    # token: OKRSYNC_SOURCES__<NAME>__TOKEN; app: a GitHub App installation (tokens minted and renewed by okrsync;
    # the private key in OKRSYNC_SOURCES__<NAME>__PRIVATE_KEY or __PRIVATE_KEY_FILE, never here)
    auth: Literal["token", "app"] = "token"
    app_id: int | str | None = None  # the App ID or its client ID (the JWT issuer); or OKRSYNC_SOURCES__<NAME>__APP_ID
    installation_id: int | None = None  # or OKRSYNC_SOURCES__<NAME>__INSTALLATION_ID
    deploy_workflows: list[str] = Field(default_factory=list)  # workflow file names/ids run as deployments
    deploy_environment: str = "production"  # environment given to deploy workflow runs
    releases: bool = True
    release_environment: str = "release"
    deployments: bool = True
    pull_requests: bool = True

    @field_validator("repos")
    @classmethod
    def _repos(cls, v: list[str]) -> list[str]:
        for r in v:
            if r.count("/") != 1 or not all(r.split("/")):
                raise ValueError(f"expected owner/name, got {r!r}")
        return v


class ServiceNowSource(SourceBase):
    type: Literal["servicenow"]
    user: str | None = None  # basic auth user (or OKRSYNC_SOURCES__<NAME>__USER)
    # None: a token when one is set, else basic auth; oauth: a bearer token from POST /oauth_token.do (grant below)
    auth: Literal["basic", "token", "oauth"] | None = None
    grant: Literal["password", "client_credentials"] = "password"
    client_id: str | None = None  # or OKRSYNC_SOURCES__<NAME>__CLIENT_ID (the secret only in the environment)
    table: str = "incident"
    query: str | None = None  # extra encoded query ANDed to the sync query
    fields: list[str] = Field(default_factory=list)  # extra fields kept for where: selectors

    @model_validator(mode="after")
    def _needs_url(self) -> Self:
        if not self.url:
            raise ValueError("a servicenow source needs url: https://<instance>.service-now.com")
        return self


class PagerDutySource(SourceBase):
    type: Literal["pagerduty"]
    # api_key: `Authorization: Token token=<key>`; oauth: an OAuth access token, `Authorization: Bearer <token>`
    # (PagerDuty developer docs, "OAuth Functionality": "along with the Bearer token type")
    auth: Literal["api_key", "oauth"] = "api_key"
    service_ids: list[str] = Field(default_factory=list)
    team_ids: list[str] = Field(default_factory=list)
    urgencies: list[Literal["high", "low"]] = Field(default_factory=list)
    window_days: int = Field(default=30, ge=1, le=180)  # since/until slice width


SourceConfig = Annotated[
    JiraSource | GitHubSource | ServiceNowSource | PagerDutySource, Field(discriminator="type")
]


@dataclass(frozen=True)
class SourceSpec:
    """What okrsync knows of a system type: its name in reports, the record kinds it yields, its settings."""

    label: str
    kinds: tuple[str, ...]
    model: type[BaseModel]
    default_url: str = ""  # the API when `url` is not set (SaaS with one API host)


# The one table of source types (the connector package of each is okrsync.connectors.<type>).
SOURCES: dict[str, SourceSpec] = {
    "jira": SourceSpec("Jira", ("issue",), JiraSource),
    "github": SourceSpec("GitHub", ("issue", "pull_request", "deployment"), GitHubSource, "https://api.github.com"),
    "servicenow": SourceSpec("ServiceNow", ("incident",), ServiceNowSource),
    "pagerduty": SourceSpec("PagerDuty", ("incident",), PagerDutySource, "https://api.pagerduty.com"),
}
