"""The typed shape of a stream's read state, as the store keeps it (JSON in sync_state: cursor, pending, state).

These TypedDicts describe the JSON the engine has always written, key for key, so a store written before them
resumes unchanged. A connector's own checkpoint and state stay its own: typed in the connector, opaque here."""

from __future__ import annotations

from typing import Any, Mapping, TypedDict

# Streams no longer read whose rows older stores still hold (their cursors no longer move): GitHub's per-repository
# check, now Connector.finish().
RETIRED_STREAMS = ("repo_check",)


class ReadChain(TypedDict):
    """Which read a page belongs to: the run that started it (its start becomes the cursor) and its `since`."""

    run_started: str  # ISO time
    run_id: int
    full: bool
    since: str | None  # ISO time; None: everything


class PendingRead(ReadChain):
    """An interrupted read: its chain plus the connector's resume point after the last page written."""

    checkpoint: Mapping[str, Any] | None


class StreamState(TypedDict):
    """A stream's row in sync_state."""

    cursor: str | None  # start of the last complete read (ISO); None: never read completely
    pending: PendingRead | None  # the read in progress, if one was interrupted
    state: dict[str, Any]  # connector-private state kept for the next run


class PageState(TypedDict):
    """What a page writes with its records (the cursor is written only when the read completes)."""

    pending: PendingRead
    state: dict[str, Any]


def pending_read(chain: ReadChain, checkpoint: Mapping[str, Any] | None) -> PendingRead:
    return {"run_started": chain["run_started"], "run_id": chain["run_id"], "full": chain["full"],
            "since": chain["since"], "checkpoint": checkpoint}
