"""Fault injection: seeded, scoped rules (429s, 5xx bursts, slow answers, dropped connections, malformed pages)."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

KINDS = ("rate_limit", "error", "slow", "drop", "malformed")
TERMINAL = ("rate_limit", "error", "drop")  # these replace the real answer; slow/malformed modify it


@dataclass
class Rule:
    id: int
    kind: str
    system: str | None = None  # None: every system
    path: str | None = None  # a path prefix, e.g. /rest/api/3/search/jql
    method: str | None = None
    fraction: float = 1.0  # chance that a matching request is hit
    count: int | None = None  # stop after firing this many times (None: forever)
    after: int = 0  # let this many matching requests through first
    retry_after: float = 1.0  # rate_limit: seconds in Retry-After (or the system's reset header)
    statuses: tuple[int, ...] = (500, 502, 503)  # error: cycled through
    delay: float = 0.5  # slow: seconds
    seen: int = 0
    fired: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def matches(self, system: str, method: str, path: str) -> bool:
        return ((self.system is None or self.system == system)
                and (self.method is None or self.method.upper() == method)
                and (self.path is None or path.startswith(self.path)))

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "system": self.system, "path": self.path, "method": self.method,
                "fraction": self.fraction, "count": self.count, "after": self.after,
                "retry_after": self.retry_after, "statuses": list(self.statuses), "delay": self.delay,
                "seen": self.seen, "fired": self.fired}


@dataclass
class Decision:
    kind: str | None = None  # rate_limit | error | drop | None
    status: int = 0
    retry_after: float = 0.0
    delay: float = 0.0
    malformed: bool = False
    rules: list[int] = field(default_factory=list)

    @property
    def label(self) -> str | None:
        parts = [self.kind] if self.kind else []
        if self.delay:
            parts.append("slow")
        if self.malformed:
            parts.append("malformed")
        return "+".join(parts) or None


class Faults:
    """The fault rules of a sandbox; decisions are deterministic for a given seed and order of requests."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._rules: list[Rule] = []
        self._next = 1
        self._lock = threading.Lock()

    # -- adding rules ------------------------------------------------------------------------------------
    def add(self, kind: str, *, system: str | None = None, path: str | None = None, method: str | None = None,
            fraction: float = 1.0, count: int | None = None, after: int = 0, retry_after: float = 1.0,
            statuses: tuple[int, ...] | list[int] = (500, 502, 503), delay: float = 0.5) -> dict[str, Any]:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(KINDS)}")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be within [0, 1]")
        statuses = tuple(int(s) for s in statuses)
        if kind == "error" and (not statuses or any(s < 500 for s in statuses)):
            raise ValueError("error statuses must be 5xx")
        with self._lock:
            rule = Rule(self._next, kind, system, path, method, float(fraction), count, int(after),
                        float(retry_after), statuses, float(delay))
            rule.rng = random.Random(f"{self.seed}:{rule.id}")
            self._next += 1
            self._rules.append(rule)
            return rule.as_dict()

    def rate_limit(self, fraction: float = 1.0, retry_after: float = 1.0, **scope: Any) -> dict[str, Any]:
        """Answer a fraction of requests 429 with Retry-After (PagerDuty: ratelimit-reset) seconds."""
        return self.add("rate_limit", fraction=fraction, retry_after=retry_after, **scope)

    def server_errors(self, n: int = 3, statuses: tuple[int, ...] = (500, 502, 503), **scope: Any) -> dict[str, Any]:
        """A 5xx burst: the next n matching requests fail, cycling through `statuses`."""
        return self.add("error", count=n, statuses=statuses, **scope)

    def slow(self, delay: float = 0.5, fraction: float = 1.0, **scope: Any) -> dict[str, Any]:
        return self.add("slow", delay=delay, fraction=fraction, **scope)

    def drop(self, fraction: float = 1.0, **scope: Any) -> dict[str, Any]:
        """Close the connection without an answer."""
        return self.add("drop", fraction=fraction, **scope)

    def malformed(self, fraction: float = 1.0, **scope: Any) -> dict[str, Any]:
        """Answer 200 with a truncated, invalid JSON body."""
        return self.add("malformed", fraction=fraction, **scope)

    # -- inspecting and clearing -------------------------------------------------------------------------
    def rules(self, system: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r.as_dict() for r in self._rules if system is None or r.system in (None, system)]

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self, system: str | None = None) -> None:
        with self._lock:
            self._rules = [] if system is None else [r for r in self._rules if r.system not in (None, system)]

    def reseed(self, seed: int) -> None:
        with self._lock:
            self.seed = seed
            for r in self._rules:
                r.rng = random.Random(f"{seed}:{r.id}")

    # -- the decision for one request --------------------------------------------------------------------
    def decide(self, system: str, method: str, path: str) -> Decision:
        d = Decision()
        with self._lock:
            if not self._rules:
                return d
            for r in self._rules:
                if not r.matches(system, method, path) or (r.count is not None and r.fired >= r.count):
                    continue
                r.seen += 1  # every matching request counts towards `after`, even one another rule took
                if d.kind is not None or r.seen <= r.after or r.rng.random() >= r.fraction:
                    continue
                r.fired += 1
                d.rules.append(r.id)
                if r.kind == "slow":
                    d.delay += r.delay
                elif r.kind == "malformed":
                    d.malformed = True
                else:
                    d.kind = r.kind
                    d.retry_after = r.retry_after
                    if r.kind == "error":
                        d.status = r.statuses[(r.fired - 1) % len(r.statuses)]
            self._rules = [r for r in self._rules if r.count is None or r.fired < r.count]
        return d
