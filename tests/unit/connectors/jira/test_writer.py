"""Jira write-back: one comment kept in place (marker), the okrsync.status property, the progress field."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import responses

from okrsync.config.keyresults import JiraTarget
from okrsync.connectors.base import SourceError, WriteResult
from okrsync.connectors.jira.writer import build_writer, has_marker, render_comment
from okrsync.domain.status import KRStatus

from .helpers import CLOUD, DC, TOKEN, cloud_config, creds, dc_config, options, path, query, stub_cloud

ISSUE = f"{CLOUD}/rest/api/2/issue/OKR-12"
STATUS = KRStatus(
    kr_id="KR1", title="Increase release frequency by 40%", objective_id="O1",
    objective_title="Enhance software quality", metric="deployment_frequency", status="on_track", value=6.0,
    baseline=5.0, target=7.0, progress=0.5, score=0.5, expected=0.4, items=12, unit="deploys/week",
    period="2026-Q4", window_start="2026-10-01T00:00:00.000Z", window_end="2026-11-15T00:00:00.000Z",
    computed_at="2026-11-15T00:00:00.000Z",
)
TARGET = JiraTarget(to="jira", issue="OKR-12", field="Progress")
ME = {"accountId": "bot-1", "displayName": "okrsync bot"}


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as r:
        yield r


def writer(cfg=None):
    return build_writer("jira", cfg or cloud_config(), creds(), options())


def methods(rsps) -> list[tuple[str, str]]:
    return [(c.request.method, path(c)) for c in rsps.calls]


def comments_page(comments: list[dict], start: int = 0, total: int | None = None) -> dict:
    return {"startAt": start, "maxResults": 5000, "total": len(comments) if total is None else total,
            "comments": comments}


def comment(cid: str, body: str, author: str = "bot-1") -> dict:
    return {"id": cid, "body": body, "author": {"accountId": author}}


SOFTWARE = {"id": "10003", "key": "OKR", "name": "OKRs", "projectTypeKey": "software"}


def stub_project(rsps, base: str = CLOUD, body: dict | None = None) -> None:
    rsps.get(f"{base}/rest/api/2/project/OKR", json=body or SOFTWARE)


def stub_writes(rsps, comment_id: str = "10001") -> None:
    stub_project(rsps)
    rsps.post(f"{ISSUE}/comment", status=201, json={"id": comment_id, "body": "..."})
    rsps.put(f"{ISSUE}/comment/{comment_id}", json={"id": comment_id})
    rsps.put(f"{ISSUE}/properties/okrsync.status", status=201)
    rsps.put(ISSUE, status=204)
    rsps.get(f"{CLOUD}/rest/api/2/myself", json=ME)


def test_render_comment_wiki_markup():
    text = render_comment(replace(STATUS, title="Ship *checkout* v2 [beta]", overridden=True))
    assert text.splitlines() == [
        r"*KR1 — Ship \*checkout\* v2 \[beta\]*",
        "Objective: O1 — Enhance software quality",
        "Status: (/) *on track*",
        "Value / target: 6 / 7 deploys/week (baseline 5)",
        "Progress: 50.0% (expected pace 40.0%)",
        "Items counted: 12",
        "Period: 2026-Q4 (window 2026-10-01 to 2026-11-15)",
        "_The value is a manual override; the computed value is kept in okrsync's history._",
        "{color:#97a0af}okrsync:KR1 · kept up to date by okrsync; edits to this comment are overwritten{color}",
    ]
    assert has_marker(text, "KR1") and not has_marker(text, "KR10")
    no_data = render_comment(replace(STATUS, status="no_data", value=None, progress=None, baseline=None, unit=None))
    assert "Status: (?) *no data*" in no_data and "Value / target: no data yet / 7" in no_data
    assert "Progress: n/a (expected pace 40.0%)" in no_data


@pytest.mark.parametrize("body, kr, expected", [
    ("x\n{color:#97a0af}okrsync:KR1 · kept{color}", "KR1", True),
    ("okrsync:KR10 · kept", "KR1", False),
    (r"okrsync:KR\_a\-1 · kept", "KR_a-1", True),  # escaped marker as okrsync writes it
    ("okrsync:KR_a-1 · kept", "KR_a-1", True),
    ("okrsync:KR1.2 · kept", "KR1", False),
    (None, "KR1", False),
])
def test_marker_matching(body, kr, expected):
    assert has_marker(body, kr) is expected


def test_first_write_posts_one_comment_sets_property_and_field(rsps):
    stub_cloud(rsps)
    stub_writes(rsps)
    rsps.get(f"{ISSUE}/comment", json=comments_page([comment("9", "someone else's note")]))
    result = writer().write(TARGET, STATUS, None)
    assert result == WriteResult(remote_ref="10001", actions=[
        ("comment_created", "OKR-12 comment 10001"),
        ("property_set", "OKR-12 okrsync.status = on_track"),
        ("field_set", "OKR-12 Progress = 50.0"),
    ])
    assert methods(rsps) == [
        ("GET", "/rest/api/2/serverInfo"), ("GET", "/rest/api/2/issue/OKR-12/comment"),
        ("GET", "/rest/api/2/project/OKR"), ("POST", "/rest/api/2/issue/OKR-12/comment"),
        ("PUT", "/rest/api/2/issue/OKR-12/properties/okrsync.status"),
        ("GET", "/rest/api/2/field"), ("PUT", "/rest/api/2/issue/OKR-12"),
    ]
    calls = {(c.request.method, path(c)): c for c in rsps.calls}
    posted = json.loads(calls[("POST", "/rest/api/2/issue/OKR-12/comment")].request.body)
    assert posted == {"body": render_comment(STATUS)}
    prop = json.loads(calls[("PUT", "/rest/api/2/issue/OKR-12/properties/okrsync.status")].request.body)
    assert prop == STATUS.machine()
    edit = calls[("PUT", "/rest/api/2/issue/OKR-12")]
    assert json.loads(edit.request.body) == {"fields": {"customfield_10050": 50.0}}
    assert "notifyUsers" not in edit.request.url
    assert query(calls[("GET", "/rest/api/2/issue/OKR-12/comment")]) == {
        "startAt": "0", "maxResults": "5000", "orderBy": "created"}


def test_second_write_with_the_remote_ref_edits_in_place_and_posts_nothing(rsps):
    stub_cloud(rsps)
    stub_writes(rsps)
    w = writer()
    first = w.write(TARGET, STATUS, "10001")
    second = w.write(TARGET, replace(STATUS, value=6.5, progress=0.75), first.remote_ref)
    assert first.remote_ref == second.remote_ref == "10001"
    assert second.actions[0] == ("comment_edited", "OKR-12 comment 10001")
    assert not [c for c in rsps.calls if c.request.method == "POST"]
    assert not [c for c in rsps.calls if path(c).endswith("/comment") and c.request.method == "GET"]
    edits = [c for c in rsps.calls if path(c) == "/rest/api/2/issue/OKR-12/comment/10001"]
    assert len(edits) == 2 and "Progress: 75.0%" in json.loads(edits[1].request.body)["body"]


def test_lost_remote_ref_finds_the_marker_comment_on_a_later_page_and_edits_it(rsps):
    stub_cloud(rsps)
    stub_writes(rsps, comment_id="10077")
    marked = render_comment(replace(STATUS, value=1.0))
    rsps.get(f"{ISSUE}/comment", json=comments_page([comment("1", "hello"), comment("2", "okrsync:KR10 · x")], 0, 3),
             match=[responses.matchers.query_param_matcher({"startAt": "0"}, strict_match=False)])
    rsps.get(f"{ISSUE}/comment", json=comments_page([comment("10077", marked)], 2, 3),
             match=[responses.matchers.query_param_matcher({"startAt": "2"}, strict_match=False)])
    result = writer().write(TARGET, STATUS, None)
    assert result.remote_ref == "10077"
    assert result.actions[0] == ("comment_edited", "OKR-12 comment 10077")
    assert not [c for c in rsps.calls if c.request.method == "POST"]


def test_a_deleted_comment_is_replaced_once(rsps):
    stub_cloud(rsps)
    stub_writes(rsps, comment_id="10002")
    gone = {"errorMessages": ["Can not find a comment for the id: 10001."]}
    rsps.put(f"{ISSUE}/comment/10001", status=404, json=gone)
    rsps.get(f"{ISSUE}/comment", json=comments_page([]))
    result = writer().write(TARGET, STATUS, "10001")
    assert result.remote_ref == "10002" and result.actions[0] == ("comment_created", "OKR-12 comment 10002")
    assert len([c for c in rsps.calls if c.request.method == "POST"]) == 1


def test_a_marker_quoted_by_someone_else_is_not_ours(rsps):
    stub_cloud(rsps)
    stub_writes(rsps)
    rsps.get(f"{ISSUE}/comment", json=comments_page([comment("5", render_comment(STATUS), author="human-7")]))
    result = writer().write(JiraTarget(to="jira", issue="OKR-12"), STATUS, None)
    assert result.actions == [("comment_created", "OKR-12 comment 10001"),
                              ("property_set", "OKR-12 okrsync.status = on_track")]
    assert not [c for c in rsps.calls if path(c).endswith("/comment/5")]


def test_post_is_not_retried_on_5xx(rsps):
    stub_cloud(rsps)
    stub_project(rsps)
    rsps.get(f"{ISSUE}/comment", json=comments_page([]))
    rsps.post(f"{ISSUE}/comment", status=503, json={"errorMessages": ["unavailable"]})
    with pytest.raises(SourceError, match=r"^jira: HTTP 503 from .*/rest/api/2/issue/OKR-12/comment: unavailable$"):
        writer().write(TARGET, STATUS, None)
    assert len([c for c in rsps.calls if c.request.method == "POST"]) == 1


def test_property_put_is_retried_on_5xx_because_it_is_idempotent(rsps):
    stub_cloud(rsps)
    stub_project(rsps)
    rsps.put(f"{ISSUE}/comment/10001", json={"id": "10001"})
    rsps.put(f"{ISSUE}/properties/okrsync.status", status=502)
    rsps.put(f"{ISSUE}/properties/okrsync.status", status=200)
    result = writer().write(JiraTarget(to="jira", issue="OKR-12"), STATUS, "10001")
    assert [a for a, _ in result.actions] == ["comment_edited", "property_set"]
    assert len([c for c in rsps.calls if path(c).endswith("okrsync.status")]) == 2


def test_no_progress_leaves_the_field_alone_and_field_ids_skip_discovery(rsps):
    stub_cloud(rsps)
    stub_writes(rsps)
    result = writer().write(TARGET, replace(STATUS, progress=None), "10001")
    assert [a for a, _ in result.actions] == ["comment_edited", "property_set"]
    rsps.calls.reset()
    result = writer().write(JiraTarget(to="jira", issue="OKR-12", field="customfield_10060"),
                            replace(STATUS, progress=1.2346), "10001")
    assert result.actions[-1] == ("field_set", "OKR-12 customfield_10060 = 123.5")
    assert "/rest/api/2/field" not in [path(c) for c in rsps.calls]


def test_unknown_field_name_is_a_clear_error(rsps):
    stub_cloud(rsps)
    stub_writes(rsps)
    with pytest.raises(SourceError, match=r"^jira: no Jira field named 'Progres' \(set field: to a field id"):
        writer().write(JiraTarget(to="jira", issue="OKR-12", field="Progres"), STATUS, "10001")


def test_data_center_writes_with_a_bearer_token(rsps):
    base = f"{DC}/rest/api/2/issue/OKR-12"
    stub_project(rsps, DC)
    rsps.put(f"{base}/comment/10001", json={"id": "10001"})
    rsps.put(f"{base}/properties/okrsync.status", status=200)
    w = writer(dc_config(deployment="server"))
    w.write(JiraTarget(to="jira", issue="OKR-12"), STATUS, "10001")
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in rsps.calls)
    assert w.requests_made == 3  # the project's type once, the comment, the property


def test_plan_sends_nothing(rsps):
    lines = writer().plan(TARGET, STATUS)
    assert lines == [
        "OKR-12: edit the okrsync comment (okrsync:KR1) in place, or post it if there is none: on track, "
        "value 6 / 7 deploys/week (baseline 5), progress 50.0%",
        "OKR-12: set issue property okrsync.status = {status: on_track, value: 6, progress: 0.5}",
        "OKR-12: set field Progress = 50.0",
    ]
    assert writer().plan(TARGET, replace(STATUS, progress=None))[-1] == \
        "OKR-12: leave field Progress unchanged (no progress yet)"
    assert len(rsps.calls) == 0


@pytest.mark.parametrize("value,baseline,target,line", [
    # fraction KRs read as percentages with the digits the target needs, never '0.58 / 0.9 %' (DESIGN §5)
    (0.58, None, 0.9, "Value / target: 58.0% / 90.0%"),
    (0.99987, 0.999, 0.9999, "Value / target: 99.987% / 99.99% (baseline 99.9%)"),
    (None, None, 0.9, "Value / target: no data yet / 90.0%"),
])
def test_comment_of_a_fraction_kr(value, baseline, target, line):
    text = render_comment(replace(STATUS, metric="availability", value=value, baseline=baseline, target=target, unit="%"))
    assert line in text.splitlines()
