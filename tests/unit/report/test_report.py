"""The HTML report: structure, bars and pace markers, items, escaping, history charts, no external resources."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from okrsync.engine.compute import compute
from okrsync.engine.history import history_rows
from okrsync.report import ITEM_CAP, render_report
from okrsync.report.chart import Bar, history_chart, nice_range
from tests.builders import t

from .helpers import FIRST_RUN, NOW, SN_URL, build_store, parse

STATUSES = {"KR1": "on_track", "KR2": "off_track", "KR3": "at_risk", "KR4": "on_track", "KR5": "no_data",
            "KR6": "achieved", "KR7": "not_started"}
LABELS = {"on_track": "on track", "off_track": "off track", "at_risk": "at risk", "no_data": "no data",
          "achieved": "achieved", "not_started": "not started"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    comp, store = build_store(tmp_path_factory.mktemp("report") / "okrsync.db")
    html = render_report(comp, store)
    yield comp, store, html, parse(html)
    store.close()


def kr_node(root, kr_id):
    return root.find("article", id=f"kr-{kr_id}")


def test_title_period_and_computed_at(rendered):
    _, _, html, root = rendered
    assert root.find("title").text() == "OKR report 2026-Q4"
    assert root.find("h1").text() == "OKR report 2026-Q4"
    sub = root.find("p", "sub").text()
    assert "01 Oct 2026 – 31 Dec 2026 (UTC)" in sub
    assert "computed at 2026-11-15 10:00 UTC" in sub
    assert "49% of the period elapsed" in sub
    assert html.startswith("<!DOCTYPE html>")


def test_every_kr_with_its_status_badge(rendered):
    comp, _, _, root = rendered
    assert {k.kr.id: k.status for k in comp.all_krs()} == STATUSES  # the scenario covers every status
    for kr_id, status in STATUSES.items():
        node = kr_node(root, kr_id)
        assert node.attrs["data-status"] == status and f"status-{status}" in node.classes
        assert node.find("span", "kid").text() == kr_id
        badge = node.find("span", f"status-{status}")
        assert "badge" in badge.classes and badge.text() == LABELS[status]
    # the summary chips count KRs per status
    chips = {c.attrs["class"].split()[1]: c.text() for c in root.find_all("span", "chip")}
    assert chips["status-on_track"] == "on track 2" and chips["status-achieved"] == "achieved 1"


def test_objectives_overview_and_sections(rendered):
    _, _, _, root = rendered
    overview = root.find("section", "overview")
    rows = [tr for tr in overview.find_all("tr") if tr.find_all("td")]
    assert [r.find("td", "oid").text() for r in rows] == ["O1", "O2", "O3"]
    assert rows[0].find("a").attrs["href"] == "#obj-O1"
    assert rows[1].find("span", "badge").text() == "at risk" and "55%" in rows[1].text()
    assert rows[2].find("td", "child").find("span", "parent-mark").attrs["title"] == "part of O2"
    o2 = root.find("section", "objective", id="obj-O2")
    assert [a.attrs["id"] for a in o2.find_all("article")] == ["kr-KR3", "kr-KR4", "kr-KR5", "kr-KR6"]
    assert "part of O2" in root.find("section", id="obj-O3").find("p", "obj-meta").text()


@pytest.mark.parametrize("kr_id,fill,pct", [("KR1", "62.5", "62%"), ("KR2", "23.3", "23%"), ("KR3", "25.0", "25%"),
                                            ("KR4", "40.0", "40%"), ("KR6", "100.0", "200%")])
def test_progress_bar_width_and_pace_marker(rendered, kr_id, fill, pct):
    _, _, _, root = rendered
    node = kr_node(root, kr_id)
    bar = node.find("svg", "bar")
    assert bar.find("rect", "bar-fill").attrs["width"] == fill  # progress clamped to [0, 100] %
    assert bar.find("rect", "bar-track").attrs["width"] == "100"
    # expected = (Nov 15 10:00 - Oct 1) / 92 days = 0.49366 -> marker at 49.37 % of the track
    assert bar.find("line", "bar-pace").attrs["x1"] == "49.37"
    assert bar.attrs["viewbox"] == "0 0 100 16"
    assert node.find("span", "pct").text() == pct
    assert bar.find("rect", "bar-fill").attrs["fill"] == {"KR6": "#0f766e", "KR2": "#dc2626", "KR3": "#d97706"}.get(
        kr_id, "#16a34a")


def test_no_data_and_not_started_bars_have_no_fill(rendered):
    _, _, _, root = rendered
    for kr_id, pace in (("KR5", "49.37"), ("KR7", "0.0")):
        bar = kr_node(root, kr_id).find("svg", "bar")
        assert bar.find_all("rect", "bar-fill") == []
        assert bar.find("line", "bar-pace").attrs["x1"] == pace
    assert "no items matched the selection" in kr_node(root, "KR5").find("p", "reason").text()


def test_objective_score_bars(rendered):
    _, _, _, root = rendered
    head = root.find("section", id="obj-O2").find("div", "obj-head")
    assert head.find("rect", "bar-fill").attrs["width"] == "55.0"
    assert head.find("line", "bar-pace").attrs["x1"] == "49.37"


def test_formula_window_select_and_figures(rendered):
    _, _, _, root = rendered
    node = kr_node(root, "KR2")
    meta = dict(zip([d.text() for d in node.find_all("dt")], [d.text() for d in node.find_all("dd")]))
    assert meta["formula"] == "successful deployments finished in the window / (window days / 7)"
    assert meta["window"] == "2026-10-01 00:00 UTC → 2026-11-15 10:00 UTC (45.4 days; period)"
    assert meta["select"] == "source=github, environment=production"
    assert meta["metric"] == "deployment_frequency"
    figs = {f.find("div", "k").text(): (f.find("div", "v").text(), f.find("div", "n").text())
            for f in node.find_all("div", "fig")}
    assert figs["value"] == ("1.23", "deploys/week")
    assert figs["target"] == ("2", "deploys/week · increase")
    assert figs["baseline"] == ("1", "deploys/week")
    assert figs["items"] == ("8", "counted")
    # a "%" unit keeps the percent sign on the number
    kr1 = {f.find("div", "k").text(): f.find("div", "v").text() for f in kr_node(root, "KR1").find_all("div", "fig")}
    assert kr1["value"] == "62.5%" and kr1["target"] == "100.0%"


def test_override_is_marked(rendered):
    _, _, html, root = rendered
    node = kr_node(root, "KR4")
    assert "overridden" in node.classes
    assert node.find("span", "override").text() == "override"
    note = node.find("p", "override").text()
    assert note == "Overridden: set by hand to 2 — agreed with the CTO <b>on Monday</b>; computed value 3"
    assert "agreed with the CTO &lt;b&gt;on Monday&lt;/b&gt;" in html
    assert [a.attrs["id"] for a in root.find_all("article", "overridden")] == ["kr-KR4"]


def test_items_are_linked_capped_and_newest_first(rendered):
    _, _, html, root = rendered
    items = kr_node(root, "KR1").find("details", "items")
    assert items.find("summary").text() == "Items behind this KR (32)"
    rows = items.find_all("tr", "item")
    assert len(rows) == ITEM_CAP == 25
    assert items.find("p", "more").text().startswith("and 7 more")
    assert [r.find("td", "key").text() for r in rows[:3]] == ["APP-300", "APP-301", "APP-229"]
    link = rows[1].find("a")
    assert link.attrs["href"] == "https://acme.atlassian.net/browse/APP-301?focusedCommentId=1&page=x"
    assert 'href="https://acme.atlassian.net/browse/APP-301?focusedCommentId=1&amp;page=x"' in html
    assert rows[1].find("td", "sys").text() == "Jira issue"
    assert rows[2].find("td", "st").text() == "To Do (todo)"
    assert rows[2].find("td", "at").text() == "2026-10-01"
    assert rows[-1].find("td", "st").text() == "Done"  # the category is not repeated when it says the same


def test_item_titles_escaped_and_unsafe_urls_not_linked(rendered):
    _, _, html, root = rendered
    rows = kr_node(root, "KR1").find_all("tr", "item")
    assert rows[0].find_all("a") == []  # javascript: is never a link
    assert rows[0].find("td", "title").text() == "Drop the <script>alert('x')</script> step"
    assert "javascript:" not in html
    assert "Drop the &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; step" in html
    assert "Fix &#34;quotes&#34; &amp; &lt;ampersands&gt;" in html


def test_incident_and_deployment_items(rendered):
    _, _, html, root = rendered
    inc = kr_node(root, "KR3").find_all("tr", "item")
    assert len(inc) == 6 and inc[0].find("td", "sys").text() == "ServiceNow incident"
    assert inc[0].find("td", "key").text().startswith("INC")
    assert inc[0].find("a").attrs["href"] == SN_URL.format(n=5)
    assert inc[0].find("td", "title").text() == "Checkout outage 5"
    dep = kr_node(root, "KR2").find_all("tr", "item")
    assert len(dep) == 8 and dep[0].find("td", "sys").text() == "GitHub deployment"
    assert dep[0].find("td", "key").text() == "production @ abcdef7"
    assert dep[0].find("td", "title").text() == "acme/web main"
    assert dep[0].find("a").attrs["href"] == "https://github.com/acme/web/deployments/7"


def test_html_escaping_of_a_script_title(rendered):
    _, _, html, root = rendered
    assert "<script>alert(1)" not in html
    assert "Ship checkout v2 &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert root.find("section", id="obj-O1").find("h2").text() == "Ship checkout v2 <script>alert(1)</script>"
    scripts = root.find_all("script")
    assert len(scripts) == 1 and "beforeprint" in scripts[0].text()  # only our own print helper


def test_no_external_resources(rendered):
    _, _, html, root = rendered
    item_links = {a.attrs["href"] for td in root.find_all("td", "key") for a in td.find_all("a")}
    for node in root.iter():
        for attr in ("src", "href", "xlink:href", "action", "data", "poster", "srcset"):
            value = node.attrs.get(attr)
            if value is None:
                continue
            if re.match(r"\s*(https?:)?//", value, re.I):
                assert value in item_links, f"external {attr} on <{node.tag}>: {value}"
            else:
                assert value.startswith("#"), f"unexpected {attr} on <{node.tag}>: {value}"
    assert not root.find_all("link") and not root.find_all("img") and not root.find_all("iframe")
    assert all("src" not in s.attrs for s in root.find_all("script"))
    style = root.find("style").text()
    assert "url(" not in style and "@import" not in style and "@font-face" not in style
    assert "src=" not in html


def test_chart_polyline_has_one_point_per_history_row(rendered):
    _, store, _, root = rendered
    for kr_id in ("KR1", "KR2", "KR3", "KR4", "KR6", "KR7"):
        node = kr_node(root, kr_id)
        points = node.find("polyline", "series").attrs["points"].split()
        assert len(points) == len(store.history(kr_id)) == 2
        assert len(node.find_all("circle", "pt")) == 2
        assert node.find("svg", "chart").attrs["aria-label"] == f"{kr_id} value history: 2 values"


def test_chart_lines_for_baseline_target_and_pace(rendered):
    _, _, _, root = rendered
    chart = kr_node(root, "KR2").find("svg", "chart")
    base = chart.find("line", "baseline")
    target = chart.find("line", "target")
    assert float(target.attrs["y1"]) < float(base.attrs["y1"])  # target above baseline for an increase KR
    labels = [x.text() for x in chart.find_all("text", "hlabel")]
    assert labels == ["baseline 1 deploys/week", "target 2 deploys/week"]
    pace = chart.find("line", "pace-line")
    assert float(pace.attrs["y2"]) < float(pace.attrs["y1"])  # the expected value rises over time
    first, last = (p.split(",") for p in chart.find("polyline", "series").attrs["points"].split())
    assert float(first[0]) < float(last[0])  # x follows computed_at
    assert float(first[1]) < float(last[1])  # the value fell between the runs (higher y = lower value)
    ticks = [x.text() for x in chart.find_all("text") if x.attrs.get("text-anchor") == "start"]
    assert ticks == ["2026-11-01 00:00 UTC"]
    titles = [c.find("title").text() for c in chart.find_all("circle")]
    assert titles[1] == "2026-11-15 10:00 UTC: 1.23 deploys/week (off track)"


def test_a_third_run_adds_a_point(tmp_path):
    comp, store = build_store(tmp_path / "s.db", runs=(FIRST_RUN, "2026-11-08 00:00", NOW))
    root = parse(render_report(comp, store))
    assert len(kr_node(root, "KR1").find("polyline", "series").attrs["points"].split()) == 3
    assert len(store.history("KR1")) == 3
    store.close()


def test_empty_state_without_history(tmp_path):
    comp, store = build_store(tmp_path / "s.db", runs=())
    root = parse(render_report(comp, store))
    for kr_id in STATUSES:
        node = kr_node(root, kr_id)
        assert node.find_all("svg", "chart") == []
        assert node.find("div", "chart-empty").text() == "No recorded values yet: every sync adds one."
    store.close()


def test_single_value_state(tmp_path):
    comp, store = build_store(tmp_path / "s.db", runs=(NOW,))
    root = parse(render_report(comp, store))
    node = kr_node(root, "KR2")
    assert node.find_all("svg", "chart") == []
    assert node.find("div", "chart-empty").text() == (
        "One recorded value so far: 1.23 deploys/week at 2026-11-15 10:00 UTC. The chart appears after the next sync.")
    assert kr_node(root, "KR5").find("div", "chart-empty").text() == "No value in the 1 recorded run yet."
    store.close()


def test_report_in_the_workspace_time_zone(tmp_path):
    comp, store = build_store(tmp_path / "s.db")
    comp.workspace.timezone = "Europe/Berlin"
    root = parse(render_report(comp, store))
    assert "computed at 2026-11-15 11:00 CET" in root.find("p", "sub").text()
    store.close()


def test_renders_without_sources_synced_or_objectives(tmp_path):
    from okrsync.config.workspace import load_workspace_text
    from okrsync.engine.store import Store

    ws = load_workspace_text("period: 2026-Q4\n").workspace
    store = Store(tmp_path / "empty.db")
    root = parse(render_report(compute(ws, store, t(NOW)), store))
    assert root.find("div", "empty").text() == "No objectives in this workspace yet."
    store.close()


# -- geometry ------------------------------------------------------------------------------------
@pytest.mark.parametrize("progress,expected,fill,pace,empty", [
    (0.5, 0.25, 50.0, 25.0, False), (1.7, 1.2, 100.0, 100.0, False), (-0.3, 0.0, 0.0, 0.0, False),
    (None, 0.4, 0.0, 40.0, True), (0.123456, None, 12.35, None, False),
])
def test_bar_geometry(progress, expected, fill, pace, empty):
    assert Bar.of(progress, expected) == Bar(fill, pace, empty)


@pytest.mark.parametrize("lo,hi,expected", [
    (0.0, 1.0, (0.0, 1.0, 0.25)), (1.0, 2.0, (1.0, 2.0, 0.25)), (3.52, 10.48, (2.0, 12.0, 2.0)),
    (5.0, 5.0, (4.5, 5.5, 0.25)), (0.0, 0.0, (0.0, 1.0, 0.25)), (-3.0, 7.0, (-5.0, 7.5, 2.5)),
    (0.0, 1234.0, (0.0, 1500.0, 500.0)), (0.0, 0.62, (0.0, 0.8, 0.2)),
])
def test_nice_range(lo, hi, expected):
    assert nice_range(lo, hi) == pytest.approx(expected)


def _rows(*values, times=("2026-11-01T00:00:00.000Z", "2026-11-08T00:00:00.000Z", "2026-11-15T00:00:00.000Z")):
    return [{"computed_at": times[i], "value": v, "status": "on_track"} for i, v in enumerate(values)]


def test_history_chart_geometry():
    span = (datetime(2026, 10, 1, tzinfo=timezone.utc), datetime(2027, 1, 1, tzinfo=timezone.utc))
    c = history_chart(_rows(1.0, 1.5, 2.0), unit=None, baseline=1.0, target=2.0, span=span, direction="increase",
                      fmt_time=str)
    assert [p.x for p in c.points] == [c.left, (c.left + c.right) / 2, c.right]
    assert [p.y for p in c.points] == [c.bottom, (c.top + c.bottom) / 2, c.top]
    assert [h.y for h in c.hlines] == [c.bottom, c.top]
    assert c.y_ticks[0] == (c.bottom, "1") and c.y_ticks[-1] == (c.top, "2")
    # the ideal line: baseline + elapsed fraction x (target - baseline) at the first and the last run
    assert c.pace is not None and c.bottom > c.pace[1] > c.pace[3] > c.top
    # a maintain KR has no pace line; a missing value is skipped; all rows still counted
    m = history_chart(_rows(1.0, None, 2.0), unit=None, baseline=None, target=1.5, span=span,
                      direction="maintain_above", fmt_time=str)
    assert m.pace is None and len(m.points) == 2 and m.count == 3


def test_history_chart_same_second_spreads_by_index():
    same = ("2026-11-01T00:00:00.000Z",) * 3
    c = history_chart(_rows(1.0, 2.0, 3.0, times=same), unit=None, baseline=None, target=None, span=None,
                      direction="increase", fmt_time=str)
    assert [p.x for p in c.points] == [c.left, (c.left + c.right) / 2, c.right]
    assert history_chart(_rows(1.0), unit=None, baseline=None, target=None, span=None, direction="increase",
                         fmt_time=str) is None


def test_history_rows_helper_matches_the_store(tmp_path):
    comp, store = build_store(tmp_path / "s.db", runs=(FIRST_RUN,))
    rows, _ = history_rows(compute(comp.workspace, store, t(NOW)), store, 9)
    assert {r["kr_id"] for r in rows} == set(STATUSES)
    store.close()


def test_long_history_is_thinned_but_keeps_first_and_last():
    start = datetime(2026, 10, 1, tzinfo=timezone.utc).timestamp()
    rows = [{"computed_at": datetime.fromtimestamp(start + i * 900, timezone.utc).isoformat(), "value": float(i),
             "status": "on_track"} for i in range(5000)]  # every 15 minutes for ~52 days
    c = history_chart(rows, unit=None, baseline=0.0, target=5000.0, span=None, direction="increase", fmt_time=str)
    assert c.count == 5000 and 2 <= len(c.points) <= 401
    assert c.points[0].x == c.left and c.points[-1].x == c.right
    assert c.points[-1].label.endswith(": 4999")
    assert c.markers == c.points[-1:]  # one dot for the latest value, not thousands
