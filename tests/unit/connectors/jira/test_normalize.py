"""Jira normalizers: sprints (both shapes), times, story points, status category, whole records, real payloads."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from okrsync.connectors.jira.client import discover_fields
from okrsync.connectors.jira.normalize import (
    FieldMap,
    issue_key,
    normalize_issue,
    parse_sprint,
    parse_sprints,
    parse_time,
    status_category,
    story_points,
)
from okrsync.domain.records import Issue, RecordError, Sprint

from .helpers import devlake_issues, har_body, issue


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


LEGACY = ("com.atlassian.greenhopper.service.sprint.Sprint@1a2b[id=42,rapidViewId=4,state=CLOSED,name=Sprint 1,"
          "startDate=2026-01-05T10:00:00.000+01:00,endDate=2026-01-19T10:00:00.000+01:00,completeDate=<null>,"
          "sequence=42]")


@pytest.mark.parametrize("value, expected", [
    # legacy string (Server/DC): state lower-cased, <null> = None, +01:00 -> UTC
    (LEGACY, Sprint("42", "Sprint 1", "closed", utc(2026, 1, 5, 9), utc(2026, 1, 19, 9), None)),
    # names with commas (and '=') survive; goal and activatedDate are known keys too
    ("com.atlassian.greenhopper.service.sprint.Sprint@9f[id=7,rapidViewId=1,state=ACTIVE,name=Team A, Sprint 3, "
     "a=b,goal=ship, then rest,startDate=2026-02-01T08:00:00.000Z,endDate=<null>,completeDate=<null>,"
     "activatedDate=2026-02-01T08:00:00.000Z,sequence=7,autoStartStop=false]",
     Sprint("7", "Team A, Sprint 3, a=b", "active", utc(2026, 2, 1, 8), None, None)),
    # the real Server 8.20 shape (HAR)
    ("com.atlassian.greenhopper.service.sprint.Sprint@265412e9[id=2,rapidViewId=1,state=CLOSED,name=Sample Sprint 1,"
     "startDate=2022-04-07T07:29:48.802Z,endDate=2022-04-21T07:29:48.802Z,completeDate=2022-04-21T06:09:48.802Z,"
     "activatedDate=2022-04-07T07:29:48.802Z,sequence=2,goal=<null>,autoStartStop=false]",
     Sprint("2", "Sample Sprint 1", "closed", utc(2022, 4, 7, 7, 29, 48, 802000), utc(2022, 4, 21, 7, 29, 48, 802000),
            utc(2022, 4, 21, 6, 9, 48, 802000))),
    ("com.atlassian.greenhopper.service.sprint.Sprint@1[id=9,state=FUTURE,name=Later,startDate=<null>,endDate=<null>]",
     Sprint("9", "Later", "future")),
    # object (Cloud): numeric id -> str
    ({"id": 7, "goal": "", "name": "EE Sprint 7", "state": "closed", "boardId": 8,
      "endDate": "2020-06-26T00:38:00.000Z", "startDate": "2020-06-12T00:38:51.882Z",
      "completeDate": "2020-06-22T05:59:58.980Z"},
     Sprint("7", "EE Sprint 7", "closed", utc(2020, 6, 12, 0, 38, 51, 882000), utc(2020, 6, 26, 0, 38),
            utc(2020, 6, 22, 5, 59, 58, 980000))),
    ({"id": 175, "name": "K5 Sprint 1", "state": "active", "startDate": "2022-07-16T06:35:25.617+0800"},
     Sprint("175", "K5 Sprint 1", "active", utc(2022, 7, 15, 22, 35, 25, 617000))),
    (None, None),
    ("", None),
])
def test_parse_sprint(value, expected):
    assert parse_sprint(value) == expected


@pytest.mark.parametrize("value", [
    "not a sprint",
    "com.atlassian.greenhopper.service.sprint.Sprint@1[state=CLOSED,name=No id]",
    "com.atlassian.greenhopper.service.sprint.Sprint@1[id=1,name=x,startDate=yesterday]",
    {"name": "no id"},
    42,
])
def test_unreadable_sprint_is_a_record_error(value):
    with pytest.raises(RecordError):
        parse_sprint(value)


def test_parse_sprints_list_dedupes_and_accepts_one_value():
    obj = {"id": 1, "name": "S1", "state": "closed"}
    assert parse_sprints([obj, dict(obj), {"id": 2, "name": "S2", "state": "active"}]) == (
        Sprint("1", "S1", "closed"), Sprint("2", "S2", "active"))
    assert parse_sprints(obj) == (Sprint("1", "S1", "closed"),)
    assert parse_sprints(None) == ()
    assert parse_sprints([]) == ()


@pytest.mark.parametrize("text, expected", [
    ("2026-05-15T09:00:00.000+0900", utc(2026, 5, 15, 0, 0)),
    ("2020-06-12T08:13:13.360+0800", utc(2020, 6, 12, 0, 13, 13, 360000)),
    ("2026-01-01T00:30:00.000+0800", utc(2025, 12, 31, 16, 30)),
    ("2026-03-29T01:59:59.999Z", utc(2026, 3, 29, 1, 59, 59, 999000)),
    ("2022-04-28T18:24:56.000+0000", utc(2022, 4, 28, 18, 24, 56)),
    ("2026-10-01T10:00:00.000-0530", utc(2026, 10, 1, 15, 30)),
    ("2026-01-05T10:00:00.000+01:00", utc(2026, 1, 5, 9)),
    (None, None),
])
def test_parse_time_to_exact_utc(text, expected):
    value = parse_time(text, "created")
    assert value == expected
    assert value is None or value.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T00:00:00.000+0000", 1715763600000])
def test_bad_time_is_a_record_error(text):
    with pytest.raises(RecordError, match="bad created time"):
        parse_time(text, "created")


@pytest.mark.parametrize("value, expected", [
    (3, 3.0), (2.5, 2.5), (0, 0.0), ("5", 5.0), (" 1.5 ", 1.5), ("-1", -1.0),
    (None, None), ("", None), ("abc", None), (True, None), (float("nan"), None), ([3], None),
])
def test_story_points(value, expected):
    assert story_points(value) == expected


@pytest.mark.parametrize("key, expected", [("new", "todo"), ("indeterminate", "in_progress"), ("done", "done")])
def test_status_category_from_the_category_key_only(key, expected):
    # the status name says "Done" but the category decides
    assert status_category({"name": "Done", "statusCategory": {"key": key, "name": "whatever"}}) == expected


@pytest.mark.parametrize("status", [None, {}, {"name": "Done"}, {"statusCategory": {"key": "undefined"}}])
def test_status_without_category_is_a_record_error(status):
    with pytest.raises(RecordError, match="status category"):
        status_category(status)


FMAP = FieldMap(story_points=("customfield_10016", "customfield_10026"), sprint=("customfield_10020",),
                epic_link=("customfield_10014",))


def test_normalize_issue_exact_record():
    payload = issue(
        7, "2026-05-15T09:00:00.000+0900", category="done",
        updated="2026-05-16T09:00:00.000+0800", resolutiondate="2026-05-16T01:00:00.000Z",
        status={"name": "Erledigt", "statusCategory": {"key": "done"}},
        labels=["kr:KR2", "backend"], components=[{"id": "1", "name": "API"}, {"id": "2", "name": "Web"}],
        parent={"id": "900", "key": "APP-1", "fields": {"summary": "Epic"}},
        assignee={"displayName": "Ada Lovelace", "accountId": "abc"},
        customfield_10016=None, customfield_10026="3",
        customfield_10020=[{"id": 5, "name": "S5", "state": "active", "startDate": "2026-05-11T00:00:00.000Z"}],
        customfield_10014="APP-2",
    )
    got = normalize_issue(payload, source="jira", site="https://acme.atlassian.net/", fields=FMAP)
    assert got == Issue(
        source="jira", id="10007", key="APP-7", title="Issue 7", status_category="done",
        created=utc(2026, 5, 15, 0), status="Erledigt", type="Story", updated=utc(2026, 5, 16, 1),
        resolved=utc(2026, 5, 16, 1), project="APP", labels=("kr:KR2", "backend"), components=("API", "Web"),
        parent="APP-1", sprints=(Sprint("5", "S5", "active", utc(2026, 5, 11)),), story_points=3.0,
        assignee="Ada Lovelace", url="https://acme.atlassian.net/browse/APP-7", raw=payload,
    )


def test_parent_falls_back_to_the_epic_link_field():
    got = normalize_issue(issue(1, customfield_10014="APP-100"), source="jira", site="https://x", fields=FMAP)
    assert got.parent == "APP-100"
    got = normalize_issue(issue(1), source="jira", site="https://x", fields=FMAP)
    assert got.parent is None and got.sprints == () and got.story_points is None


@pytest.mark.parametrize("payload, reason", [
    ({"id": "1", "fields": {}}, "without a key"),
    ({"key": "APP-1", "fields": {}}, "without an id"),
    ({"id": "1", "key": "APP-1"}, "without fields"),
    (issue(1, created=None), "without a created time"),
    (issue(1, created="15/05/2026"), "bad created time"),
    (issue(1, resolutiondate="soon"), "bad resolutiondate time"),
    (issue(1, customfield_10020=["garbage"]), "unreadable sprint"),
    (issue(1, status={"name": "Done"}), "status category"),
    ("not an object", "not an object"),
])
def test_unparseable_issue_raises_record_error(payload, reason):
    with pytest.raises(RecordError, match=reason):
        normalize_issue(payload, source="jira", site="https://x", fields=FMAP)


def test_issue_key_names_skipped_payloads():
    assert issue_key({"key": "APP-1", "id": "1"}) == "APP-1"
    assert issue_key({"id": "1"}) == "1"
    assert issue_key(None) == "?"


# -- real payloads -------------------------------------------------------------------------------
DEVLAKE_FIELDS = FieldMap(story_points=("customfield_10024",), sprint=("customfield_10020",),
                          epic_link=("customfield_10014",))
EE7 = Sprint("7", "EE Sprint 7", "closed", utc(2020, 6, 12, 0, 38, 51, 882000), utc(2020, 6, 26, 0, 38),
             utc(2020, 6, 22, 5, 59, 58, 980000))


def _devlake() -> dict[str, Issue]:
    out = {}
    for payload in devlake_issues():
        rec = normalize_issue(payload, source="jira", site="https://merico.atlassian.net", fields=DEVLAKE_FIELDS)
        out[rec.key] = rec
    return out


def test_devlake_cloud_issues_all_parse():
    recs = _devlake()
    assert len(recs) == 33
    assert all(r.created.tzinfo == timezone.utc for r in recs.values())
    cats = [r.status_category for r in recs.values()]
    assert cats.count("done") == 25 and cats.count("todo") == 8
    # every issue is named 已完成 or To Do; the category comes from statusCategory only
    assert {r.status for r in recs.values()} == {"已完成", "To Do"}


@pytest.mark.parametrize("key, expected", [
    ("EE-1", dict(id="10063", status="已完成", status_category="todo", type="故事", project="EE",
                  created=utc(2020, 6, 12, 0, 13, 13, 360000), resolved=utc(2020, 6, 19, 6, 31, 18, 495000),
                  updated=utc(2021, 3, 28, 8, 6, 8, 713000), sprints=(EE7,), story_points=-1.0, parent=None,
                  labels=("frontEnd", "Saas"), assignee="Dingding Zhang",
                  url="https://merico.atlassian.net/browse/EE-1")),
    ("EE-2", dict(id="10064", status_category="done", story_points=2.0, sprints=(EE7,),
                  created=utc(2020, 6, 12, 0, 15, 36, 123000))),
    ("EE-25", dict(id="10087", status_category="done", type="子任务", parent="EE-1", sprints=(EE7,),
                   story_points=None, created=utc(2020, 6, 12, 0, 40, 54, 210000))),
    ("K5-2", dict(id="20708", status="To Do", status_category="todo", type="Story", parent="K5-1", resolved=None,
                  created=utc(2022, 7, 15, 22, 29, 49, 26000), title="first story",
                  sprints=(Sprint("175", "K5 Sprint 1", "active", utc(2022, 7, 15, 22, 35, 25, 617000),
                                  utc(2022, 7, 29, 22, 35)),))),
    ("K5-4", dict(id="20710", type="Epic", parent=None, sprints=(), story_points=None)),
])
def test_devlake_exact_records(key, expected):
    rec = _devlake()[key]
    for name, value in expected.items():
        assert getattr(rec, name) == value, name
    assert rec.raw["key"] == key


def test_har_server_issues_with_discovered_fields():
    fmap = discover_fields(har_body("GET", "/rest/api/2/field"))
    page = har_body("POST", "/rest/api/2/search")
    recs = {r.key: r for r in (normalize_issue(p, source="dc", site="http://localhost:8080", fields=fmap)
                               for p in page["issues"])}
    assert len(recs) == 25
    s1 = Sprint("2", "Sample Sprint 1", "closed", utc(2022, 4, 7, 7, 29, 48, 802000),
                utc(2022, 4, 21, 7, 29, 48, 802000), utc(2022, 4, 21, 6, 9, 48, 802000))
    s2 = Sprint("1", "Sample Sprint 2", "active", utc(2022, 4, 21, 8, 39, 48, 228000),
                utc(2022, 5, 5, 8, 59, 48, 228000), None)
    sp16 = recs["SP-16"]
    assert (sp16.id, sp16.status_category, sp16.sprints, sp16.story_points) == ("10015", "done", (s2, s1), 2.0)
    assert sp16.created == utc(2022, 3, 31, 12, 35, 47) and sp16.resolved == utc(2022, 4, 22, 15, 11, 47)
    sp12 = recs["SP-12"]
    assert (sp12.type, sp12.parent, sp12.status_category) == ("Sub-task", "SP-10", "in_progress")
    assert sp12.story_points is None
    assert recs["SP-1"].url == "http://localhost:8080/browse/SP-1"
    assert recs["SP-23"].story_points == 2.0 and recs["SP-23"].sprints == (s1,)
