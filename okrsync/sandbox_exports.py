"""What `okrsync sandbox` prints: the exports (and ports) fitting a workspace's sources, whatever their names."""

from __future__ import annotations

import secrets
from typing import Any, Mapping
from urllib.parse import urlparse

from okrsync.config.settings import env_name
from okrsync.config.sources import SOURCES

SYSTEMS = tuple(SOURCES)
DEFAULT_NAMES = {system: system for system in SYSTEMS}
SANDBOX_EMAIL = "okr-bot@acme.example"
SANDBOX_USER = "okrsync"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def sandbox_tokens(require: bool) -> dict[str, str]:
    """Per-system secrets: fresh random ones the sandbox then insists on, or fixed demo values (any is accepted)."""
    if require:
        return {s: f"sandbox-{s}-{secrets.token_hex(8)}" for s in SYSTEMS}
    return {s: f"demo-{s}-token" for s in SYSTEMS}


def exports(sources: Mapping[str, Any], tokens: Mapping[str, str]) -> list[tuple[str, str]]:
    """(variable, value) for each source's auth mode: Jira email + token, GitHub token, ServiceNow user +
    password, PagerDuty token. `sources` maps the source key to its config (or to its type as a string)."""
    out: list[tuple[str, str]] = []
    for name, cfg in sources.items():
        kind = cfg if isinstance(cfg, str) else getattr(cfg, "type", "")
        if kind not in tokens:
            continue
        if kind == "jira":
            out.append((env_name(name, "email"), getattr(cfg, "email", None) or SANDBOX_EMAIL))
            out.append((env_name(name, "token"), tokens[kind]))
        elif kind == "servicenow":
            out.append((env_name(name, "user"), getattr(cfg, "user", None) or SANDBOX_USER))
            out.append((env_name(name, "password"), tokens[kind]))
        else:
            out.append((env_name(name, "token"), tokens[kind]))
    return out


def workspace_ports(sources: Mapping[str, Any]) -> tuple[dict[str, int], list[str]]:
    """{system: port} from the sources' local URLs (http://127.0.0.1:8711), and one line per source the sandbox
    cannot serve (a remote host, or a second port for a system already given one)."""
    ports: dict[str, int] = {}
    notes: list[str] = []
    for name, cfg in sources.items():
        kind = getattr(cfg, "type", "")
        url = urlparse(getattr(cfg, "url", None) or "")
        if kind not in SYSTEMS:
            continue
        if url.hostname not in LOCAL_HOSTS or not url.port:
            notes.append(f"{name}: {url.hostname or 'no url'} is not a local port; point its url at the sandbox")
            continue
        if ports.setdefault(kind, url.port) != url.port:
            notes.append(f"{name}: the sandbox serves one {kind}, on port {ports[kind]}, not {url.port}")
    return ports, notes
