"""The real CLI against the simulators: first and incremental syncs, write-back, exact values, report."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

from .conftest import NOW, quarter

pytestmark = pytest.mark.e2e


# what the write-back asks (its targets, the Jira writer's deployment type, service-desk and own-user checks)
WRITE_BACK_TARGETS = ("/repos/acme/okrs/issues/1", "/rest/api/2/issue/OKR-1", "/rest/api/2/project/OKR",
                      "/rest/api/2/serverInfo", "/rest/api/2/myself")


def counts_by_system(sb, reads_only: bool = False) -> dict[str, int]:
    """Requests per system; reads_only leaves out the write-back's own requests (its GET of the target issue
    happens whenever the rendered status moved, e.g. hours into a quarter, when values move fast)."""
    out: dict[str, int] = {}
    for r in sb.requests():
        if reads_only and r["path"].startswith(WRITE_BACK_TARGETS):
            continue
        out[r["system"]] = out.get(r["system"], 0) + 1
    return out


def test_first_sync_then_incremental_then_write_back_once(env):
    sb = env.sandbox
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    first = counts_by_system(sb)
    assert "run 1: ok" in r.stdout
    sb.reset_log()
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    second = counts_by_system(sb, reads_only=True)
    # nothing changed: one list request per stream (GitHub: per stream and repo, mostly 304s) plus the
    # statuses of deployments still in progress
    pending = sum(1 for d in sb.world.github_deployments() if d["final_state"] == "in_progress")
    assert second["github"] <= 3 * 4 + pending
    assert second["servicenow"] == 1
    assert second["pagerduty"] <= 2
    assert second["jira"] <= 3
    # (the first sync reads deployments with their statuses 100 per GraphQL query, so it is cheap too)
    assert sum(second.values()) < sum(first.values()) / 4
    writes = [w for w in sb.world.writes() if w["action"] not in ("get",)]
    comments = sb.world.jira_comments("OKR-1")
    assert len([c for c in comments if "okrsync:KR1" in c["body"].replace("\\", "")]) == 1
    body = sb.world.github_issue("acme/okrs", 1)["body"]
    assert body.count("<!-- okrsync:KR1 -->") == 1 and body.count("<!-- /okrsync:KR1 -->") == 1
    labels = [x for x in sb.world.github_issue("acme/okrs", 1)["labels"] if x.lower().startswith("okr: ")]
    assert len(labels) == 1
    prop = sb.world.jira_property("OKR-1", "okrsync.status")
    assert prop["kr"] == "KR1"
    # the second (no-change) sync sent nothing
    assert [w for w in sb.world.writes() if w not in writes] == []
    # the world changes: the next sync writes the new status once, in place
    sb.advance()
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    comments = sb.world.jira_comments("OKR-1")
    assert len([c for c in comments if "okrsync:KR1" in c["body"].replace("\\", "")]) == 1
    history = json.loads(env.run("history", "KR1", "--json").stdout)
    assert [h["run_id"] for h in history] == [1, 2, 3]


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return None if not n else (xs[(n - 1) // 2] + xs[n // 2]) / 2


def _div(a: float, b: float) -> float | None:
    return None if not b else a / b


def _approx(expected: float | None):
    """None when the window holds nothing to divide by (minutes into a period), else an approx."""
    return None if expected is None else pytest.approx(expected)


def _sec(t: datetime | None) -> datetime | None:
    """ServiceNow and PagerDuty render whole seconds; the world keeps milliseconds."""
    return None if t is None else t.replace(microsecond=0)


def test_status_json_matches_values_computed_from_the_seeded_world(env):
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    w = env.sandbox.world
    bounds = w.period_bounds()
    lo = bounds["current_start"]
    # baseline: auto = the previous calendar quarter, with its own length (DESIGN §5)
    prev_lo = datetime(lo.year - (lo.month == 1), (lo.month - 4) % 12 + 1, 1, tzinfo=timezone.utc)
    doc = env.status()  # one computation: its KRs and its generated_at (a second one would have another "now")
    krs = {k["id"]: k for o in doc["objectives"] for k in o["key_results"]}
    now_ms = datetime.fromisoformat(doc["generated_at"].replace("Z", "+00:00"))
    hi = min(now_ms, bounds["current_end"])  # the window ends now, or at the period end once it is past

    # KR2: story points of the epic's children, done / all
    kids = [i for i in w.jira_issues() if i["parent"] == "APP-100"]
    done = sum(i["story_points"] or 0 for i in kids if i["status_category"] == "done")
    total = sum(i["story_points"] or 0 for i in kids)
    assert krs["KR2"]["value"] == _approx(_div(done, total))
    assert krs["KR2"]["items"] == len(kids)

    # KR3: bugs created in the quarter so far
    bugs = [i for i in w.jira_issues() if i["type"] == "Bug" and lo <= i["created"] < hi]
    assert krs["KR3"]["value"] == len(bugs)
    # a count to reduce is judged by its projection to the period end (DESIGN §5), never "achieved" early
    length, elapsed = bounds["current_end"] - lo, hi - lo
    assert krs["KR3"]["projected"] == pytest.approx(len(bugs) * length / elapsed)
    assert krs["KR3"]["status"] != "achieved" or now_ms >= bounds["current_end"]

    # KR1: production deployments that succeeded in the window, per week; baseline = previous quarter
    deps = w.github_deployments(environment="production")
    ok = [d for d in deps if d["final_state"] == "success" and d["finished"] and lo <= d["finished"] < hi]
    weeks = (hi - lo).total_seconds() / 86400 / 7
    assert krs["KR1"]["value"] == _approx(_div(len(ok), weeks))
    prev = [d for d in deps if d["final_state"] == "success" and d["finished"] and prev_lo <= d["finished"] < lo]
    baseline = len(prev) / ((lo - prev_lo).total_seconds() / 86400 / 7)
    assert krs["KR1"]["baseline"] == pytest.approx(baseline)
    assert krs["KR1"]["target"] == pytest.approx(baseline * 1.4)

    # KR5: failed / finished production deployments in the window
    fin = [d for d in deps if d["final_state"] in ("success", "failure", "error") and d["finished"]
           and lo <= d["finished"] < hi]
    failed = [d for d in fin if d["final_state"] in ("failure", "error")]
    assert krs["KR5"]["value"] == _approx(_div(len(failed), len(fin)))

    # KR6: ServiceNow incidents resolved in the window with no reassignment / all resolved (not cancelled)
    inc = [x for x in w.servicenow_incidents() if x["state"] in ("6", "7") and (x["resolved"] or x["closed"])]
    res = [x for x in inc if lo <= _sec(x["resolved"] or x["closed"]) < hi]
    fcr = _div(sum(1 for x in res if x["reassignment_count"] == 0), len(res))
    assert krs["KR6"]["value"] == _approx(fcr)

    # KR7: PagerDuty median minutes to first acknowledgement, incidents opened in the window
    acks = [(_sec(x["acknowledged"]) - _sec(x["created"])).total_seconds() / 60 for x in w.pagerduty_incidents()
            if x["acknowledged"] and lo <= _sec(x["created"]) < hi]
    assert krs["KR7"]["value"] == _approx(_median(acks))
    assert krs["KR7"]["status"] in (("on_track", "off_track", "achieved") if acks else ("no_data", "not_started"))

    # KR8: mean hours opened -> resolved of P2/P3 incidents resolved in the window (whole seconds, as rendered)
    hours = [(_sec(x["resolved"] or x["closed"]) - _sec(x["opened"])).total_seconds() / 3600
             for x in res if x["priority"] in (2, 3)]
    assert krs["KR8"]["value"] == _approx(_div(sum(hours), len(hours)))
    for k in krs.values():
        assert k["synced_at"] is not None
        assert k["expected"] == pytest.approx((hi - lo) / (bounds["current_end"] - lo), abs=1e-3)
        if k["value"] is None:
            assert k["status"] in ("no_data", "not_started"), k


def test_report_and_explain_over_real_data(env):
    text = env.workspace.read_text() + "report:\n  path: report.html\n  json: status.json\n  csv: status.csv\n"
    env.workspace.write_text(text)
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
    html = (env.dir / "report.html").read_text()
    assert "KR1" in html and "Release frequency" in html
    assert not re.search(r'(src|href)="https?://(?!127\.0\.0\.1)', html)  # self-contained, item links local
    assert json.loads((env.dir / "status.json").read_text())["period"] == quarter(NOW)
    assert (env.dir / "status.csv").read_text().startswith("objective_id,")
    r = env.run("explain", "KR2")
    assert r.returncode == 0 and "items counted:" in r.stdout and "APP-" in r.stdout


def test_dry_run_prints_the_write_back_and_sends_nothing(env):
    r = env.run("sync", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "dry run: 2 would be written" in r.stdout
    assert "KR1 -> jira:OKR-1" in r.stdout and "KR1 -> github:acme/okrs#1" in r.stdout
    assert env.sandbox.world.writes() == []
    assert env.sandbox.world.jira_comments("OKR-1") == []
