"""Sandbox additions for benchmarks and peers: GitHub GraphQL repository lookups, cursor links, cheap `since`
keyset pages, and PagerDuty's account-wide log entries."""

from __future__ import annotations

from .conftest import PD_HEADERS
from .test_github import links, walk


def test_graphql_resolves_repositories(sandbox, http):
    query = ('query { repo0: repository(name: "web", owner: "acme") { nameWithOwner databaseId } '
             'repo1: repository(name: "nope", owner: "acme") { nameWithOwner databaseId } rateLimit { cost } }')
    r = http.post(f"{sandbox.urls['github']}/graphql", json={"query": query})
    body = r.json()
    assert r.status_code == 200
    assert body["data"]["repo0"] == {"nameWithOwner": "acme/web", "databaseId": 700001}
    assert body["data"]["repo1"] is None and body["errors"][0]["type"] == "NOT_FOUND"
    assert body["data"]["rateLimit"] == {"cost": 1}


def test_next_links_carry_a_cursor_that_pages_alone(sandbox, http):
    url = f"{sandbox.urls['github']}/repos/acme/web/issues"
    first = http.get(url, params={"state": "all", "per_page": 25})
    nxt = links(first)["next"]
    assert "after=" in nxt and nxt.endswith("page=2")
    cursor = nxt.split("after=")[1].split("&")[0]
    by_cursor = http.get(url, params={"state": "all", "per_page": 25, "after": cursor})
    by_page = http.get(url, params={"state": "all", "per_page": 25, "page": 2})
    assert by_cursor.json() == by_page.json() and by_cursor.json() != first.json()
    assert http.get(url, params={"after": "!!"}).status_code == 422


def test_since_pages_match_a_plain_filter(sandbox, http):
    url = f"{sandbox.urls['github']}/repos/acme/api/issues"
    world = sandbox.world.github_items("acme/api")
    for direction in ("asc", "desc"):
        got, _ = walk(http, url, state="all", since="2026-11-01T00:00:00Z", sort="updated", direction=direction,
                      per_page=30)
        want = sorted((i for i in world if i["updated"].replace(microsecond=0).isoformat() >= "2026-11-01"),
                      key=lambda i: (i["updated"], i["number"]), reverse=direction == "desc")
        assert [i["number"] for i in got] == [i["number"] for i in want]


def test_account_wide_log_entries(sandbox, http):
    url = f"{sandbox.urls['pagerduty']}/log_entries"
    params = {"since": "2026-08-01T00:00:00Z", "until": "2026-11-15T12:00:00Z", "is_overview": "true",
              "time_zone": "UTC", "limit": 100, "total": "true"}
    entries, offset, total = [], 0, None
    while True:
        body = http.get(url, params={**params, "offset": offset}, headers=PD_HEADERS).json()
        total = body["total"] if total is None else total
        entries += body["log_entries"]
        if not body["more"]:
            break
        offset += 100
    want = [(x["id"], e["type"], e["created"]) for x in sandbox.world.pagerduty_incidents()
            for e in x["log_entries"] if "2026-08-01" <= e["created"].isoformat() < "2026-11-15T12"
            and e["type"] != "notify_log_entry"]
    assert total == len(entries) == len(want) > 0
    times = [e["created_at"] for e in entries]
    assert times == sorted(times, reverse=True)  # newest first
    assert {(e["incident"]["id"], e["type"]) for e in entries} == {(i, t) for i, t, _ in want}
    assert http.get(url, params={**params, "offset": 9950}, headers=PD_HEADERS).status_code == 400
