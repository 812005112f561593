"""The contract between connectors and the engine: streams yield pages; writers apply KR status."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from okrsync.config.settings import minted_secrets
from okrsync.domain.records import Record
from okrsync.domain.status import KRStatus


def redact(text: str, secrets: list[str]) -> str:
    """Every known secret value replaced by *** (longest first, so a secret inside another leaves no tail); tokens
    minted at run time (OAuth, GitHub App) are always among them."""
    for s in sorted({s for s in (*secrets, *minted_secrets()) if s}, key=len, reverse=True):
        text = text.replace(s, "***")
    return text


class SourceError(Exception):
    """A source (or a write-back target) failed. str() is one line naming it; never a secret."""


class AuthError(SourceError):
    """401/403: the credentials are missing, wrong, or lack access."""


class NotFoundError(SourceError):
    """404: a repo, project, issue or instance does not exist (or is invisible to the token)."""


class QueryError(SourceError):
    """The system rejected a query we built from the workspace (e.g. invalid JQL)."""


@dataclass
class Skipped:
    """A record that could not be parsed: named by its key in the run summary, the run goes on."""

    key: str
    reason: str


@dataclass
class Membership:
    """Members of a JQL selector. checked=None: the complete set (replace); else a delta over checked ids."""

    jql_key: str
    jql: str
    members: set[str]
    checked: set[str] | None = None


@dataclass
class Page:
    records: Sequence[Record] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    # Resume point after this page for an interrupted read (None: nothing to record); each stream types its own
    # (a TypedDict of JSON values), the engine stores it as it is.
    checkpoint: Mapping[str, Any] | None = None
    # Connector-private state to keep for the next run (None: keep the previous one).
    state: dict[str, Any] | None = None
    memberships: list[Membership] = field(default_factory=list)


@dataclass
class ReadContext:
    """What the engine asks a stream to read."""

    since: datetime | None  # items updated at/after this; None = everything (first run of an 'all' stream)
    run_started: datetime
    full: bool = False
    first_run: bool = False
    checkpoint: dict[str, Any] | None = None  # from an interrupted read with the same since
    state: dict[str, Any] = field(default_factory=dict)  # private state saved by the previous run


class Stream(Protocol):
    name: str
    # First-run start when the source sets no sync_from: "all" history, or "previous_period" start.
    default_from: str

    def read(self, ctx: ReadContext) -> Iterator[Page]: ...


class Connector(Protocol):
    name: str

    def streams(self) -> list[Stream]: ...

    @property
    def requests_made(self) -> int: ...

    def finish(self) -> None:
        """Called by the engine once every stream has been read whole (not after a failed or stopped read), for
        what spans the streams, e.g. failing the source over a repository none of them could read (SourceError)."""
        ...

    def close(self) -> None: ...


class ClientConnector:
    """A connector whose streams share one client (anything with requests_made and close())."""

    def __init__(self, name: str, config: Any, client: Any, streams: list[Any] | None = None):
        self.name = name
        self.config = config
        self.client = client
        self._streams: list[Any] = list(streams or [])

    def streams(self) -> list[Any]:
        return list(self._streams)

    @property
    def requests_made(self) -> int:
        made: int = self.client.requests_made
        return made

    def finish(self) -> None:
        """Nothing spans the streams by default."""

    def close(self) -> None:
        self.client.close()


@dataclass
class WriteResult:
    remote_ref: str | None  # e.g. the Jira comment id, kept for the next write
    actions: list[tuple[str, str]] = field(default_factory=list)  # (action, detail)


class Writer(Protocol):
    """Applies a KR status to one kind of target. Must be idempotent and find its own marker."""

    def plan(self, target: Any, status: KRStatus) -> list[str]:
        """Human-readable lines describing what write() would send (for --dry-run)."""
        ...

    def write(self, target: Any, status: KRStatus, remote_ref: str | None) -> WriteResult: ...


@dataclass
class ConnectorOptions:
    """Engine-provided context for building a connector."""

    jql_selectors: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # jql_key -> (jql, KR ids)
    on_wait: Callable[[str, float], None] | None = None  # (message, seconds) when a rate limit makes us wait
    sleep: Callable[[float], None] | None = None  # injectable for tests
    secrets: list[str] = field(default_factory=list)  # values to redact from any message
    clock: Callable[[], float] | None = None  # injectable for tests (rate-limit reset times)
    ca_bundle: str | None = None  # default CA bundle for sources that set none (TLS verification stays on)
