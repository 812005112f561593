"""Report test helpers: a store with every KR status and two history runs, and a tiny HTML tree."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from okrsync.config.workspace import load_workspace_text
from okrsync.domain.records import Sprint
from okrsync.engine.compute import Computation, compute
from okrsync.engine.history import history_rows
from okrsync.engine.store import Store
from tests.builders import deployment, incident, issue, load, t

WORKSPACE = """
period: 2026-Q4
sources:
  jira: {type: jira, url: https://acme.atlassian.net, projects: [APP]}
  github: {type: github, repos: [acme/web]}
  servicenow: {type: servicenow, url: https://acme.service-now.com}
objectives:
  - id: O1
    title: Ship checkout v2 <script>alert(1)</script>
    owner: payments
    key_results:
      - id: KR1
        title: Checkout v2 epic done
        metric: done_ratio
        select: {source: jira, parent: APP-100}
        unit: "%"
        target: 1.0
      - id: KR2
        title: Increase release frequency by 40%
        metric: deployment_frequency
        select: {source: github, environment: production}
        unit: deploys/week
        baseline: 1
        target: 2
  - id: O2
    title: Keep production healthy
    key_results:
      - id: KR3
        title: Reduce time to restore
        metric: time_to_restore
        select: {source: servicenow}
        unit: h
        baseline: 10
        target: 4
      - id: KR4
        title: P1 incidents handled
        metric: count
        select: {source: servicenow, priority: "1"}
        baseline: 0
        target: 5
        override: {value: 2, reason: "agreed with the CTO <b>on Monday</b>"}
      - id: KR5
        title: Mean story points of labelled work
        metric: mean
        field: story_points
        select: {source: jira, labels: [nothing-here]}
        target: 3
      - id: KR6
        title: Incidents triaged
        metric: count
        select: {source: servicenow}
        baseline: 0
        target: 3
  - id: O3
    title: Sprint goals
    parent: O2
    key_results:
      - id: KR7
        title: Sprint 9 done
        metric: done_ratio
        window: sprint
        select: {source: jira, sprint: Sprint 9}
        target: 1
"""

FIRST_RUN = "2026-11-01 00:00"
NOW = "2026-11-15 10:00"
SN_URL = "https://acme.service-now.com/nav_to.do?uri=incident.do%3Fsys_id%3D{n}&sysparm_view=ess"


def records() -> list:
    recs = []
    for n in range(30):
        done = n < 18
        recs.append(issue(f"APP-{200 + n}", title=f"Checkout step {n}", parent="APP-100",
                          status_category="done" if done else ("in_progress" if n < 24 else "todo"),
                          status="Done" if done else ("In Review" if n < 24 else "To Do"),
                          url=f"https://acme.atlassian.net/browse/APP-{200 + n}", type="Story"))
    # the newest two: an unsafe link and a title that must be escaped
    recs.append(issue("APP-300", title="Drop the <script>alert('x')</script> step", parent="APP-100",
                      status_category="done", status="Done", updated="2026-11-10 00:00",
                      url="javascript:alert(1)"))
    recs.append(issue("APP-301", title="Fix \"quotes\" & <ampersands>", parent="APP-100",
                      status_category="done", status="Done", updated="2026-11-09 00:00",
                      url="https://acme.atlassian.net/browse/APP-301?focusedCommentId=1&page=x"))
    sprint9 = Sprint(id="9", name="Sprint 9", state="future", start=t("2026-12-01 00:00"), end=t("2026-12-14 00:00"))
    recs.append(issue("APP-400", title="Sprint 9 story", sprints=(sprint9,), url="https://acme.atlassian.net/browse/APP-400"))
    for d in range(8):
        recs.append(deployment(created=f"2026-10-{3 + d * 3:02d} 12:00", sha=f"abcdef{d}123456", ref="main",
                               url=f"https://github.com/acme/web/deployments/{d}"))
    for i in range(6):
        recs.append(incident(opened=f"2026-10-{2 + i * 5:02d} 08:00", resolved=f"2026-10-{2 + i * 5:02d} {14 + i}:00",
                             priority="1" if i < 3 else "2", title=f"Checkout outage {i}", url=SN_URL.format(n=i)))
    return recs


def build_store(path: Path, runs: tuple[str, ...] = (FIRST_RUN, NOW)) -> tuple[Computation, Store]:
    """Load the records, record one history run per time in `runs`, return the computation at NOW."""
    ws = load_workspace_text(WORKSPACE).workspace
    store = Store(path)
    load(store, records())
    for n, when in enumerate(runs, start=1):
        comp = compute(ws, store, t(when))
        rows, sets = history_rows(comp, store, n)
        store.record_values(rows, sets)
    return compute(ws, store, t(NOW)), store


# -- a tiny tree over our own (well-formed) HTML ---------------------------------------------------
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "source", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    content: list[str | Node] = field(default_factory=list)  # text and children in document order

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        """The text content with whitespace collapsed (attribute names are lower-case, as HTMLParser gives)."""
        out = [c if isinstance(c, str) else c.text() for c in self.content]
        return " ".join(" ".join(out).split())

    def add(self, node: Node) -> None:
        self.children.append(node)
        self.content.append(node)

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        return [n for n in self.iter() if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)
                and all(n.attrs.get(k) == v for k, v in attrs.items())]

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, cls, **attrs)
        assert found, f"no <{tag} class={cls} {attrs}>"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].add(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].add(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].content.append(data)


def parse(html: str) -> Node:
    b = _Builder()
    b.feed(html)
    b.close()
    assert b.stack == [b.root], "unclosed elements: " + ", ".join(n.tag for n in b.stack[1:])
    return b.root
