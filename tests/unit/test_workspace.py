"""The workspace file: valid files load; mistakes exit 2 with file:line and the field."""

import pytest

from okrsync.config.keyresults import parse_amount
from okrsync.config.workspace import load_workspace, load_workspace_text
from okrsync.config.yamlfile import ConfigError

BASE = """\
period: 2026-Q4
sources:
  jira: {type: jira, url: https://acme.atlassian.net, projects: [APP]}
  github: {type: github, repos: [acme/web]}
  snow: {type: servicenow, url: https://acme.service-now.com}
  pd: {type: pagerduty}
objectives:
  - id: O1
    title: Quality
    key_results:
      - id: KR1
        title: Release frequency +40%
        metric: deployment_frequency
        select: {source: github, environment: production}
        baseline: 5
        target: +40%
"""


def err(text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        load_workspace_text(text, "okrsync.yaml")
    return str(exc.value)


def test_valid_file_loads():
    ws = load_workspace_text(BASE).workspace
    kr = ws.kr("KR1")
    assert kr.metric == "deployment_frequency"
    assert ws.sources["github"].repos == ["acme/web"]
    assert ws.sources["pd"].api_url() == "https://api.pagerduty.com"
    assert ws.period.label == "2026-Q4"


def test_typo_key_names_the_line():
    text = BASE.replace("        baseline: 5\n", "        baseline: 5\n        tagret: 9\n")
    msg = err(text)
    assert msg.startswith("okrsync.yaml:16: objectives[0].key_results[0].tagret: unknown key")


def test_typo_in_selector():
    msg = err(BASE.replace("environment: production", "enviroment: production"))
    assert msg.startswith("okrsync.yaml:14: objectives[0].key_results[0].select.enviroment: unknown key")


def test_duplicate_kr_id():
    text = BASE + """\
      - id: KR1
        title: again
        metric: count
        select: {source: jira}
        target: 3
"""
    msg = err(text)
    assert "okrsync.yaml:17: objectives[0].key_results[1].id: duplicate key result id 'KR1' (first on line 11)" in msg


def test_unknown_source():
    msg = err(BASE.replace("source: github", "source: gitlab"))
    assert msg == ("okrsync.yaml:14: objectives[0].key_results[0].select.source: unknown source 'gitlab' "
                   "(sources: jira, github, snow, pd)")


def test_unknown_metric_lists_choices():
    msg = err(BASE.replace("metric: deployment_frequency", "metric: deploy_freq"))
    assert msg.startswith("okrsync.yaml:13: objectives[0].key_results[0].metric: expected 'count'")


def test_selector_key_that_does_not_fit_the_kind():
    msg = err(BASE.replace("environment: production", "sprint: Sprint 1"))
    assert "select.sprint: selector key 'sprint' does not fit deployment items" in msg


def test_jql_on_a_non_jira_source():
    msg = err(BASE.replace("environment: production", "jql: project = APP"))
    assert "jql applies to jira sources only" in msg


def test_metric_needs_kind_the_source_lacks():
    msg = err(BASE.replace("select: {source: github, environment: production}", "select: {source: jira}"))
    assert "metric deployment_frequency needs deployment items; source 'jira' (jira) has issue" in msg


def test_bad_yaml_names_the_line():
    msg = err(BASE.replace("    title: Quality\n", "    title: [Quality\n"))
    assert msg.startswith("okrsync.yaml:")
    assert "invalid YAML" in msg


def test_duplicate_yaml_key():
    msg = err(BASE.replace("period: 2026-Q4\n", "period: 2026-Q4\nperiod: 2026-Q3\n"))
    assert msg.startswith("okrsync.yaml:2: invalid YAML: duplicate key 'period' (first on line 1)")


def test_wrong_type():
    msg = err(BASE.replace("baseline: 5", "baseline: [5]"))
    assert msg.startswith("okrsync.yaml:15: objectives[0].key_results[0].baseline:")


def test_http_refused_except_loopback():
    msg = err(BASE.replace("https://acme.atlassian.net", "http://acme.atlassian.net"))
    assert "plain http:// is refused for acme.atlassian.net" in msg
    load_workspace_text(BASE.replace("https://acme.atlassian.net", "http://127.0.0.1:8080"))
    load_workspace_text(BASE.replace("https://acme.atlassian.net", "http://localhost:8080"))


def test_relative_target_needs_baseline():
    msg = err(BASE.replace("        baseline: 5\n", ""))
    assert "target +40% is relative: it needs a baseline" in msg


def test_parent_objective_must_exist_and_not_cycle():
    text = BASE.replace("    title: Quality\n", "    title: Quality\n    parent: O9\n")
    assert "unknown parent objective 'O9'" in err(text)
    text = BASE.replace("    title: Quality\n", "    title: Quality\n    parent: O1\n")
    assert "is its own ancestor" in err(text)


def test_writeback_target_needs_matching_source():
    text = BASE.replace("        target: +40%\n", "        target: +40%\n        writeback: [{to: github, issue: acme/okrs#3}]\n")
    load_workspace_text(text)
    bad = text.replace("acme/okrs#3", "acme/okrs")
    assert "expected owner/repo#N" in err(bad)


def test_file_not_found(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_workspace(tmp_path / "nope.yaml")
    assert "workspace file not found" in str(exc.value)


@pytest.mark.parametrize("value,expected", [
    (5, ("absolute", 5.0)), (0.9, ("absolute", 0.9)), ("90%", ("absolute", 0.9)), ("99.99%", ("absolute", 0.9999)),
    ("-20%", ("relative", -0.2)), ("+40%", ("relative", 0.4)), ("7", ("absolute", 7.0)),
])
def test_parse_amount(value, expected):
    kind, amount = parse_amount(value, relative_ok=True)
    assert kind == expected[0]
    assert amount == pytest.approx(expected[1])


def test_period_forms():
    for p in ("2026-H2", "2026", "{start: 2026-10-06, end: 2026-10-19}"):
        load_workspace_text(BASE.replace("period: 2026-Q4", f"period: {p}"))
    assert "expected a period" in err(BASE.replace("period: 2026-Q4", "period: Q4"))


def test_examples_validate():
    from pathlib import Path

    examples = sorted(Path(__file__).parents[2].joinpath("examples").rglob("okrsync*.yaml"))
    for path in examples:
        load_workspace(path)


@pytest.mark.parametrize("in_file,env,expected", [
    ("", {}, (0.10, 0.25)),
    ("", {"OKRSYNC_THRESHOLDS__ON_TRACK": "0.05"}, (0.05, 0.25)),
    ("thresholds: {at_risk: 0.3}\n", {"OKRSYNC_THRESHOLDS__ON_TRACK": "0.05", "OKRSYNC_THRESHOLDS__AT_RISK": "0.4"},
     (0.05, 0.3)),
    ("thresholds: {on_track: 0.2, at_risk: 0.5}\n", {"OKRSYNC_THRESHOLDS__ON_TRACK": "0.05"}, (0.2, 0.5)),
])
def test_thresholds_come_from_the_file_then_the_environment(monkeypatch, in_file, env, expected):
    from okrsync.config.settings import Settings
    from okrsync.engine.pipeline import thresholds_for

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    loaded = load_workspace_text(in_file + BASE)
    t = thresholds_for(loaded, Settings())
    assert (t.on_track, t.at_risk) == expected


def test_a_misspelt_threshold_is_an_error():
    assert "thresholds" in err("thresholds: {on_trak: 0.2}\n" + BASE)


def test_leaves_are_a_ratios_parts_each_with_the_selector_it_reads_through():
    text = BASE.replace("""        baseline: 5
        target: +40%
""", """        baseline: 5
        target: +40%
      - id: KR2
        title: Defect density
        metric: ratio
        select: {source: jira, project: APP}
        numerator: {metric: count, select: {source: jira, type: Bug}}
        denominator: {metric: points_done}
        direction: decrease
        target: 0.1
""")
    ws = load_workspace_text(text).workspace
    leaves = [(spec.metric, sel.source, sel.type, sel.project) for spec, sel in ws.kr("KR2").leaves()]
    assert leaves == [("count", "jira", "Bug", None), ("points_done", "jira", None, "APP")]
    assert [(spec.metric, sel.environment) for spec, sel in ws.kr("KR1").leaves()] == [
        ("deployment_frequency", "production")]
