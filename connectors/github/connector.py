"""GitHub connector: builds the client and the streams of one `type: github` source."""

from __future__ import annotations

from typing import Any, Callable
from urllib.parse import urlparse

from okrsync.config.settings import SourceCredentials, env_name
from okrsync.config.sources import is_loopback
from okrsync.connectors.auth import attach, credentials_problem, github_app, github_app_mint
from okrsync.connectors.base import AuthError, ConnectorOptions, SourceError
from okrsync.connectors.http import HttpOptions, HTTPStatusError, http_options

from .client import GitHubClient, RepoNotFound
from .deploys import DeploymentsStream, WorkflowRunsStream
from .streams import IssuesStream, PullsStream, ReleasesStream


def make_client(name: str, config: Any, credentials: SourceCredentials | None, options: ConnectorOptions,
                clock: Callable[[], float] | None = None) -> GitHubClient:
    """A client for the source's API URL; a token is required except for a loopback host (the sandbox)."""
    base = config.api_url() if config is not None else "https://api.github.com"
    problem = credentials_problem(name, config, credentials or SourceCredentials()) if config is not None else None
    if problem:
        raise AuthError(problem)
    if config is not None and getattr(config, "auth", "token") == "app":
        return _app_client(name, config, credentials or SourceCredentials(), options, base, clock)
    token = credentials.token.get_secret_value() if credentials is not None and credentials.token else None
    if not token and not is_loopback(urlparse(base).hostname):  # a write-back target without a source
        raise AuthError(f"{name}: no token: set {env_name(name, 'token')}")
    opts = http_options(config, options) if config is not None else HttpOptions(ca_bundle=options.ca_bundle)
    return GitHubClient(name, base, token, options=options, http_options=opts, clock=clock or options.clock)


def _app_client(name: str, config: Any, credentials: SourceCredentials, options: ConnectorOptions, base: str,
                clock: Callable[[], float] | None) -> GitHubClient:
    """A GitHub App installation: installation tokens minted (PyGithub signs the JWT) and renewed by our client."""
    app_id, pem, installation = github_app(name, config, credentials)
    hint = f"{env_name(name, 'app_id')}, {env_name(name, 'installation_id')} and {env_name(name, 'private_key')}"
    client = GitHubClient(name, base, None, options=options, http_options=http_options(config, options),
                          clock=clock or options.clock)
    client.hint = client.http.auth_hint = hint
    client.http.secrets.append(pem)
    attach(client.http, github_app_mint(client.http, app_id, pem, installation, hint))
    return client


class GitHubConnector:
    def __init__(self, name: str, config: Any, client: GitHubClient):
        self.name = name
        self.config = config
        self.client = client
        self.failures: dict[str, str] = {}  # repo or stream:repo -> one-line message
        self._missing: set[str] = set()  # repositories later streams skip
        self._compared: dict[tuple[str, str, str], tuple[str, ...]] = {}
        self.graphql: bool | None = None  # deployments through GraphQL: None untried, False the endpoint is absent

    def streams(self) -> list[Any]:
        out: list[Any] = [IssuesStream(self)]
        if self.config.pull_requests:
            out.append(PullsStream(self))
        if self.config.deployments:
            out.append(DeploymentsStream(self))
        if self.config.releases:
            out.append(ReleasesStream(self))
        if self.config.deploy_workflows:
            out.append(WorkflowRunsStream(self))
        return out

    @property
    def requests_made(self) -> int:
        return self.client.requests_made

    def finish(self) -> None:
        """Fails the source, in one line, when a repository could not be read. It runs after the streams, so
        they all sync the other repositories and keep their cursors."""
        if self.failures:
            raise SourceError("; ".join(dict.fromkeys(self.failures.values())))

    def close(self) -> None:
        self.client.close()

    # -- shared by the streams ----------------------------------------------------------------
    def fail(self, repo: str, message: str, *, repo_wide: bool) -> None:
        self.failures.setdefault(message, message)
        if repo_wide:
            self._missing.add(repo)

    def skipped(self, repo: str) -> bool:
        return repo in self._missing

    def compare(self, repo: str, base: str, head: str) -> tuple[str, ...]:
        """Commits in head not in base, cached per run; an unknown or unrelated SHA ships just itself."""
        key = (repo, base, head)
        if key not in self._compared:
            try:
                self._compared[key] = tuple(self.client.compare(repo, base, head))
            except RepoNotFound:
                self._compared[key] = (head,)
            except HTTPStatusError as exc:
                if exc.status not in (404, 422):
                    raise
                self._compared[key] = (head,)
        return self._compared[key]


def build(name: str, config: Any, credentials: SourceCredentials, options: ConnectorOptions, *,
          clock: Callable[[], float] | None = None) -> GitHubConnector:
    """Entry point used by okrsync.connectors.registry."""
    return GitHubConnector(name, config, make_client(name, config, credentials, options, clock))

