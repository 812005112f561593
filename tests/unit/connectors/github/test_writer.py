"""GitHub write-back: one marked body section per KR and one okrsync status label, idempotent."""

import json
import re

import pytest
import responses

from okrsync.config.keyresults import GitHubTarget
from okrsync.config.settings import SourceCredentials
from okrsync.connectors.base import ConnectorOptions, SourceError
from okrsync.connectors.github.writer import apply_section, build_writer, label_changes, render_section
from okrsync.domain.status import KRStatus

from .support import API, TOKEN, FakeClock, config

ISSUE = f"{API}/repos/acme/okrs/issues/3"
TARGET = GitHubTarget(to="github", issue="acme/okrs#3")


def kr(**kw):
    base = dict(kr_id="KR1", title="Increase release frequency by 40%", objective_id="O1", objective_title="Agility",
                metric="deployment_frequency", status="at_risk", value=6.2, baseline=5.0, target=7.0,
                progress=0.6, score=0.6, expected=0.55, items=31, unit="deploys/week", period="2026-Q4",
                computed_at="2026-11-15T12:00:00.000Z")
    base.update(kw)
    return KRStatus(**base)


def writer():
    clock = FakeClock()
    return build_writer("github", config(), SourceCredentials(token=TOKEN), ConnectorOptions(sleep=clock.sleep))


SECTION = """<!-- okrsync:KR1 -->
### KR1: Increase release frequency by 40%

- **Status:** at risk
- **Value:** 6.2 deploys/week (baseline 5 deploys/week, target 7 deploys/week)
- **Progress:** 60% (expected pace 55%)
- **Items counted:** 31
- **Period:** 2026-Q4

<sub>Maintained by okrsync: edits inside this section are replaced on the next sync.</sub>
<!-- /okrsync:KR1 -->"""


def test_render_section_exact():
    assert render_section(kr()) == SECTION


def test_render_section_no_value_and_override():
    text = render_section(kr(value=None, progress=None, status="no_data", overridden=True, unit=None, period=None))
    assert "- **Status:** no data" in text and "- **Value:** no value (baseline 5, target 7)" in text
    assert "- **Progress:** – (expected pace 55%)" in text and "overridden" in text and "Period" not in text
    # computed_at is not shown: an unchanged status renders the same text
    assert render_section(kr(computed_at="2027-01-01T00:00:00.000Z")) == SECTION


@pytest.mark.parametrize("value,baseline,target,line", [
    # fraction KRs read as percentages, with the digits the target needs (DESIGN §5)
    (0.9987, None, 0.9999, "- **Value:** 99.87% (target 99.99%)"),
    (0.558, 0.5, 0.9, "- **Value:** 55.8% (baseline 50.0%, target 90.0%)"),
    (None, None, 0.9, "- **Value:** no value (target 90.0%)"),
])
def test_render_section_of_a_fraction_kr(value, baseline, target, line):
    text = render_section(kr(metric="availability", value=value, baseline=baseline, target=target, unit="%"))
    assert line in text.splitlines()


S, E = "<!-- okrsync:KR1 -->", "<!-- /okrsync:KR1 -->"
NEW = f"{S}\nnew\n{E}"


@pytest.mark.parametrize("body, expected", [
    (None, f"{NEW}\n"),
    ("", f"{NEW}\n"),
    ("Tracking issue.\r\n\r\nDetails below.\r\n", f"Tracking issue.\r\n\r\nDetails below.\n\n{NEW}\n"),
    (f"intro\n\n{S}\nold\n{E}\n\noutro", f"intro\n\n{NEW}\n\noutro"),  # edited in place
    (f"a\n{S}\nold\n{E}\nb\n{S}\ndup\n{E}\nc", f"a\n{NEW}\nb\nc"),  # a duplicate collapses into one
    (f"a\n{S}\nhalf written", f"a\n\nhalf written\n\n{NEW}\n"),  # a stray start marker is dropped
    ("x\n<!-- okrsync:KR10 -->\nten\n<!-- /okrsync:KR10 -->",
     f"x\n<!-- okrsync:KR10 -->\nten\n<!-- /okrsync:KR10 -->\n\n{NEW}\n"),  # KR10 is not KR1
])
def test_apply_section(body, expected):
    out = apply_section(body, "KR1", NEW)
    assert out == expected
    assert apply_section(out, "KR1", NEW) == out  # idempotent
    assert out.count(S) == 1 and out.count(E) == 1


@pytest.mark.parametrize("current, desired, add, remove", [
    ([], "okr: at risk", ["okr: at risk"], []),
    (["bug", "okr: on track"], "okr: at risk", ["okr: at risk"], ["okr: on track"]),
    (["okr: at risk", "okr: off track", "okr: q4 roadmap"], "okr: at risk", [], ["okr: off track"]),
    (["OKR: On Track", "kr:KR1"], "okr: achieved", ["okr: achieved"], ["OKR: On Track"]),
])
def test_label_changes_only_touch_our_labels(current, desired, add, remove):
    assert label_changes(current, desired) == (add, remove)


class FakeIssue:
    """GET/PATCH the issue and add/remove labels, keeping what was sent."""

    def __init__(self, rsps, body, labels):
        self.body, self.labels, self.sent = body, list(labels), []
        rsps.add_callback(responses.GET, ISSUE, callback=self.get)
        rsps.add_callback(responses.PATCH, ISSUE, callback=self.patch)
        rsps.add_callback(responses.POST, f"{ISSUE}/labels", callback=self.add)
        rsps.add_callback(responses.DELETE, re.compile(re.escape(ISSUE) + "/labels/.+"), callback=self.remove)

    def _issue(self):
        return 200, {}, json.dumps({"number": 3, "body": self.body, "html_url": "https://github.com/acme/okrs/issues/3",
                                    "labels": [{"name": n} for n in self.labels]})

    def get(self, request):
        return self._issue()

    def patch(self, request):
        self.sent.append(("PATCH", json.loads(request.body)))
        self.body = json.loads(request.body)["body"]
        return self._issue()

    def add(self, request):
        names = json.loads(request.body)["labels"]
        self.sent.append(("POST", names))
        self.labels += [n for n in names if n not in self.labels]
        return 200, {}, json.dumps([{"name": n} for n in self.labels])

    def remove(self, request):
        from urllib.parse import unquote

        name = unquote(request.url.rsplit("/", 1)[1])
        self.sent.append(("DELETE", name))
        self.labels.remove(name)
        return 200, {}, json.dumps([{"name": n} for n in self.labels])


def test_write_body_and_label_then_nothing_on_the_second_run():
    w = writer()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeIssue(rsps, "Our OKR tracking issue.", ["bug", "okr: on track", "okr: q4 roadmap"])
        result = w.write(TARGET, kr(), None)
        assert result.actions == [("body_updated", "acme/okrs#3"), ("label_set", "okr: at risk"),
                                  ("label_removed", "okr: on track")]
        assert result.remote_ref == "https://github.com/acme/okrs/issues/3"
        assert fake.body == f"Our OKR tracking issue.\n\n{SECTION}\n"
        assert fake.labels == ["bug", "okr: q4 roadmap", "okr: at risk"]  # other labels kept
        assert [m for m, _ in fake.sent] == ["PATCH", "POST", "DELETE"]
        assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
        fake.sent.clear()
        again = w.write(TARGET, kr(), result.remote_ref)
        assert again.actions == [("unchanged", "acme/okrs#3")]
        assert fake.sent == [] and rsps.calls[-1].request.method == "GET"


def test_existing_section_is_edited_in_place():
    w = writer()
    old = render_section(kr(status="on_track", value=6.9, progress=0.95))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeIssue(rsps, f"Intro\n\n{old}\n\nFooter written by a human", ["okr: at risk"])
        result = w.write(TARGET, kr(), None)
    assert result.actions == [("body_updated", "acme/okrs#3")]
    assert fake.body == f"Intro\n\n{SECTION}\n\nFooter written by a human"
    assert fake.sent[0][0] == "PATCH" and len(fake.sent) == 1


def test_plan_sends_nothing():
    with responses.RequestsMock():  # any request would fail the test
        lines = writer().plan(TARGET, kr())
    assert lines == [
        "acme/okrs#3: update the okrsync:KR1 section of the issue body (status at risk, value 6.2 deploys/week, "
        "progress 60%)",
        "acme/okrs#3: set label 'okr: at risk' (replacing any other okrsync status label)",
    ]


def test_missing_issue_is_one_line():
    with responses.RequestsMock() as rsps:
        rsps.get(ISSUE, status=404, json={"message": "Not Found"})
        with pytest.raises(SourceError) as exc:
            writer().write(TARGET, kr(), None)
    assert str(exc.value) == "github: issue acme/okrs#3 not found (or the token cannot see it)"


def test_label_post_is_never_retried_on_a_server_error():
    w = writer()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        FakeIssue(rsps, SECTION, [])
        rsps.replace(responses.POST, f"{ISSUE}/labels", status=502)
        with pytest.raises(SourceError):
            w.write(TARGET, kr(), None)
        assert sum(c.request.method == "POST" for c in rsps.calls) == 1
