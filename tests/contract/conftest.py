"""Contract tests: independent client libraries (`jira`, PyGithub) pointed at the sandbox.

okrsync talks to every system through its own HttpClient, and the sandbox simulators were written by the same
people, so the two can share a wrong assumption about a payload. Here the vendors' de-facto client libraries, which
were written against the real APIs, call every endpoint okrsync calls and must parse what the sandbox answers.
One sandbox per module (a module sets JIRA_MODE = "server" for a Data Center Jira); retries are off everywhere so a
drift fails at once instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from okrsync.sandbox import Sandbox

SEED = 42
SCALE = 300  # > 250 Jira issues (several search pages), > 30 GitHub items per repo (several list pages)
NOW = "2026-11-16T10:00:00+00:00"  # fixed: the world (and so every expected count) is the same on each run
TOKENS = {"jira": "contract-jira-token-5e1d", "github": "contract-github-token-a93c"}
JIRA_EMAIL = "okrsync-bot@acme.example"


@pytest.fixture(scope="module")
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    mode = getattr(request.module, "JIRA_MODE", "cloud")
    sb = Sandbox(seed=SEED, scale=SCALE, now=NOW, jira_mode=mode, require_token=TOKENS)
    sb.start()
    yield sb
    sb.stop()


def jira_time(value: str | None) -> datetime | None:
    """Jira's timestamp format ("2026-06-03T02:00:00.000+0200"): the jira library leaves it a string."""
    return None if value is None else datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


def whole_seconds(value: datetime | None) -> datetime | None:
    """GitHub renders times to the second: the world keeps milliseconds."""
    return None if value is None else value.replace(microsecond=0)


def logged(sandbox: Sandbox, system: str, match: Callable[[dict[str, Any]], bool], expect: int = 1,
           timeout: float = 3.0) -> list[dict[str, Any]]:
    """The sandbox's request log entries that match, once `expect` of them are there: a request is logged after
    its answer is sent, so the client may read its last answer before the entry lands."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in sandbox.requests(system) if match(e)]
        if len(found) >= expect or time.monotonic() > deadline:
            return found
        time.sleep(0.01)
