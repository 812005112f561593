"""Settings from the environment and a secrets directory (pydantic-settings); never from YAML."""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .keyresults import Thresholds

ENV_PREFIX = "OKRSYNC_"
DEFAULT_SECRETS_DIR = "/run/secrets/okrsync"
MIN_SECRET = 4
# Tokens minted at run time (ServiceNow OAuth, GitHub App installation tokens, the App's JWTs): redacted everywhere
# like the configured secrets (connectors.base.redact and Settings.secret_values read this set).
_MINTED: set[str] = set()


def remember_secret(value: str | None) -> None:
    if value and len(value) >= MIN_SECRET:
        _MINTED.add(value)


def minted_secrets() -> list[str]:
    return list(_MINTED)


def env_name(source: str, key: str) -> str:
    """The environment variable that holds a source's credential, e.g. OKRSYNC_SOURCES__JIRA__TOKEN."""
    return f"{ENV_PREFIX}SOURCES__{_norm(source).upper()}__{key.upper()}"


def _norm(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).lower()


class SourceCredentials(BaseModel):
    model_config = ConfigDict(extra="ignore")

    token: SecretStr | None = None
    email: str | None = None
    user: str | None = None
    password: SecretStr | None = None
    webhook_secret: SecretStr | None = None  # signs webhooks sent to `okrsync serve` (POST /webhooks/<source>)
    # OAuth (ServiceNow `auth: oauth`): the application registry's client; the secret never in the workspace file
    client_id: str | None = None
    client_secret: SecretStr | None = None
    # GitHub App (`auth: app`): ids may also sit in the workspace; the private key only here (PEM text, or a file)
    app_id: str | None = None
    installation_id: str | None = None
    private_key: SecretStr | None = None
    private_key_file: str | None = None

    def private_key_pem(self) -> str:
        """The App's private key: PRIVATE_KEY itself, else the content of PRIVATE_KEY_FILE ("" when unreadable)."""
        if self.private_key is not None:
            return self.private_key.get_secret_value()
        if self.private_key_file:
            try:
                return Path(self.private_key_file).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                return ""
        return ""


class _SecretsDirSource(PydanticBaseSettingsSource):
    """Files named like the env variables (OKRSYNC_SOURCES__JIRA__TOKEN) in a secrets directory."""

    def __init__(self, settings_cls: type[BaseSettings], directory: str | None):
        super().__init__(settings_cls)
        self.directory = directory

    def get_field_value(  # pragma: no cover - required by the base class
        self, field: FieldInfo, field_name: str
    ) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if not self.directory or not os.path.isdir(self.directory):
            return {}
        out: dict[str, Any] = {}
        for entry in sorted(Path(self.directory).iterdir()):
            name = entry.name
            if not entry.is_file() or not name.upper().startswith(ENV_PREFIX):
                continue
            parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
            try:
                value = entry.read_text(encoding="utf-8").strip()
            except OSError:
                continue
            cur = out
            for p in parts[:-1]:
                cur = cur.setdefault(p, {})
            cur[parts[-1]] = value
        return out


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", case_sensitive=False, extra="ignore"
    )

    sources: dict[str, SourceCredentials] = Field(default_factory=dict)
    db: str | None = None  # OKRSYNC_DB: store path or URL; default: okrsync.db beside the workspace file
    db_password: SecretStr | None = None  # OKRSYNC_DB_PASSWORD (or that file in the secrets directory)
    secrets_dir: str | None = None
    thresholds: Thresholds = Field(default_factory=Thresholds)
    lock_wait: float = 600.0
    ca_bundle: str | None = None  # CA bundle (PEM) for sources that set none; verification is never turned off
    # Compute "as of" this time instead of now (reproducible reports and tests); syncing still uses the clock.
    now: str | None = None
    # OKRSYNC_SERVE_TOKEN: the bearer token `okrsync serve` asks of the dashboard, API and metrics
    serve_token: SecretStr | None = None

    def as_of(self) -> datetime:
        if not self.now:
            return datetime.now(timezone.utc)
        value = datetime.fromisoformat(self.now.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        directory = os.environ.get(f"{ENV_PREFIX}SECRETS_DIR") or (
            DEFAULT_SECRETS_DIR if os.path.isdir(DEFAULT_SECRETS_DIR) else None
        )
        # Environment wins over the secrets directory.
        return (init_settings, env_settings, _SecretsDirSource(settings_cls, directory))

    def credentials(self, source: str) -> SourceCredentials:
        return self.sources.get(_norm(source)) or SourceCredentials()

    def secret_values(self) -> list[str]:
        """Every secret value known, for redaction (values under 4 characters would mangle every message
        they occur in and protect nothing, so they are not replaced)."""
        out = []
        for cred in self.sources.values():
            for s in (cred.token, cred.password, cred.webhook_secret, cred.client_secret):
                if s is not None and len(s.get_secret_value()) >= MIN_SECRET:
                    out.append(s.get_secret_value())
            pem = cred.private_key_pem()
            if pem:  # the whole key and each line of it (a message quoting part of the key leaks nothing either)
                out += [pem, *(ln.strip() for ln in pem.splitlines() if len(ln.strip()) >= 16 and "-----" not in ln)]
        for token in (self.serve_token, self.db_password):
            if token is not None and len(token.get_secret_value()) >= MIN_SECRET:
                out.append(token.get_secret_value())
        return out + minted_secrets()  # tokens minted at run time (OAuth, GitHub App)
