"""Pure parts of the operator fixes: plurals, network error classes, sandbox exports, fingerprints, dry-run lines."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import urllib3

from okrsync.cli import cli
from okrsync.commands_sync import dry_run_lines
from okrsync.connectors.github.normalize import normalize_pull, stable_pull
from okrsync.connectors.neterrors import speaks_no_tls, unresolvable_host
from okrsync.domain.text import plural
from okrsync.engine.pipeline import RunSummary
from okrsync.engine.store import Store, StoreRemoved
from okrsync.engine.writeback import WritebackSummary
from okrsync.sandbox_exports import exports, sandbox_tokens, workspace_ports
from tests.builders import issue

# -- plurals ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n,word,many,text", [
    (0, "request", None, "0 requests"), (1, "request", None, "1 request"), (2, "error", None, "2 errors"),
    (1, "key result", None, "1 key result"), (3, "key result", None, "3 key results"),
    (2, "entry", "entries", "2 entries"), (1, "entry", "entries", "1 entry"),
])
def test_plural(n, word, many, text):
    assert plural(n, word, many) == text


# -- network errors that name the fix ---------------------------------------------------------------------------

def dns_error(host: str, errno: int = socket.EAI_NONAME) -> requests.exceptions.ConnectionError:
    gai = socket.gaierror(errno, "Name or service not known" if errno == socket.EAI_NONAME else "Temporary failure")
    inner = urllib3.exceptions.NameResolutionError(host, None, gai)
    inner.__cause__ = gai
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/x", inner))


def test_a_name_that_does_not_exist_is_named():
    assert unresolvable_host(dns_error("acme.atlassian.invalid"), "https://acme.atlassian.invalid/x") \
        == "acme.atlassian.invalid"


def test_a_dns_server_that_did_not_answer_is_not_a_missing_name():
    assert unresolvable_host(dns_error("acme.example", socket.EAI_AGAIN)) is None


def test_refused_and_reset_are_not_dns():
    exc = requests.exceptions.ConnectionError(ConnectionRefusedError(111, "Connection refused"))
    assert unresolvable_host(exc, "http://127.0.0.1:9") is None


@pytest.mark.parametrize("text,plain", [
    ("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)", True),
    ("[SSL: RECORD_LAYER_FAILURE] record layer failure (_ssl.c:1000)", True),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate", False),
])
def test_tls_spoken_to_plain_http_is_told_apart_from_verification(text, plain):
    exc = requests.exceptions.SSLError(urllib3.exceptions.MaxRetryError(None, "/x", urllib3.exceptions.SSLError(text)))
    assert speaks_no_tls(exc) is plain


def test_the_http_client_does_not_retry_a_missing_name():
    from okrsync.connectors.base import SourceError
    from okrsync.connectors.http import HttpClient

    client = HttpClient("jira", "https://acme.atlassian.invalid", sleep=lambda s: None)
    calls = []

    def boom(*a, **kw):
        calls.append(1)
        raise dns_error("acme.atlassian.invalid")

    client.session.request = boom
    with pytest.raises(SourceError, match=r"^jira: cannot resolve host acme.atlassian.invalid "):
        client.get("/rest/api/2/myself")
    assert calls == [1]


# -- sandbox exports ---------------------------------------------------------------------------------------------

def src(type_: str, url: str = "", **kw):
    return SimpleNamespace(type=type_, url=url, **kw)


def test_exports_follow_the_workspace_names_and_auth_modes():
    tokens = {"jira": "J", "github": "G", "servicenow": "S", "pagerduty": "P"}
    sources = {"tracker": src("jira", email=None), "ghe-2": src("github"), "itsm": src("servicenow", user="bot"),
               "oncall": src("pagerduty"), "hook": src("webhook")}
    assert exports(sources, tokens) == [
        ("OKRSYNC_SOURCES__TRACKER__EMAIL", "okr-bot@acme.example"), ("OKRSYNC_SOURCES__TRACKER__TOKEN", "J"),
        ("OKRSYNC_SOURCES__GHE_2__TOKEN", "G"), ("OKRSYNC_SOURCES__ITSM__USER", "bot"),
        ("OKRSYNC_SOURCES__ITSM__PASSWORD", "S"), ("OKRSYNC_SOURCES__ONCALL__TOKEN", "P")]


def test_required_tokens_are_fresh_and_demo_tokens_fixed():
    a, b = sandbox_tokens(True), sandbox_tokens(True)
    assert set(a) == {"jira", "github", "servicenow", "pagerduty"} and a != b
    assert sandbox_tokens(False) == sandbox_tokens(False)


def test_ports_come_from_local_urls_and_remote_ones_are_noted():
    ports, notes = workspace_ports({"a": src("jira", "http://127.0.0.1:9001"), "b": src("github", "http://localhost:9002"),
                                    "c": src("pagerduty", "https://api.pagerduty.com"),
                                    "d": src("jira", "http://127.0.0.1:9009")})
    assert ports == {"jira": 9001, "github": 9002}
    assert len(notes) == 2 and notes[0].startswith("c: api.pagerduty.com") and "9009" in notes[1]


# -- churn --------------------------------------------------------------------------------------------------------

def pull_payload(stars: int, title: str = "Fix it") -> dict:
    repo = {"id": 7, "name": "web", "full_name": "acme/web", "stargazers_count": stars,
            "pushed_at": f"2026-11-0{stars}T00:00:00Z"}
    return {"id": 11, "number": 3, "state": "open", "title": title, "created_at": "2026-11-01T00:00:00Z",
            "updated_at": "2026-11-02T00:00:00Z", "merged_at": None, "html_url": "https://github.com/acme/web/pull/3",
            "head": {"ref": "f", "sha": "a" * 40, "repo": repo}, "base": {"ref": "main", "sha": "b" * 40, "repo": repo}}


def test_a_pull_request_is_kept_without_its_repository_counters():
    raw = stable_pull(pull_payload(1))
    assert raw["head"]["repo"] == {"id": 7, "name": "web", "full_name": "acme/web"}
    assert stable_pull(pull_payload(1)) == stable_pull(pull_payload(2))
    assert stable_pull({"id": 1}) == {"id": 1}


def test_repository_stats_do_not_make_a_pull_request_changed(tmp_path):
    store = Store(tmp_path / "s.db")
    try:
        first = store.write_page("github", "pulls", [normalize_pull(pull_payload(1), "github", "acme/web")], run_id=1)
        again = store.write_page("github", "pulls", [normalize_pull(pull_payload(2), "github", "acme/web")], run_id=2)
        edited = store.write_page("github", "pulls", [normalize_pull(pull_payload(2, "Fix it well"), "github",
                                                                     "acme/web")], run_id=3)
    finally:
        store.close()
    assert (first.new, again.changed, again.unchanged, edited.changed) == (1, 0, 1, 1)


def test_a_payload_change_outside_the_columns_is_unchanged_but_the_payload_is_refreshed(tmp_path):
    store = Store(tmp_path / "s.db")
    try:
        store.write_page("jira", "issues", [issue("APP-1", id="1", title="t", raw={"customfield_1": "a"})], run_id=1)
        changed = issue("APP-1", id="1", title="t", raw={"customfield_1": "b"})
        counts = store.write_page("jira", "issues", [changed], run_id=2)
        assert (counts.changed, counts.unchanged) == (0, 1)
        assert store.raw("issues", "jira", "1") == {"customfield_1": "b"}  # where: selectors see the new value
    finally:
        store.close()


# -- the store removed ------------------------------------------------------------------------------------------

def test_a_removed_or_replaced_store_is_noticed(tmp_path):
    path = tmp_path / "s.db"
    store = Store(path)
    assert not store.removed()
    path.unlink()
    assert store.removed()
    Store(path).close()  # a new file at the same path is another store
    assert store.removed()
    store.close()
    assert str(StoreRemoved(path)) == f"the store {path} was removed during the run"


# -- dry run and flags --------------------------------------------------------------------------------------------

def test_dry_run_lines_list_each_write_and_the_count():
    summary = RunSummary(4, None)
    summary.computation = object()
    summary.writeback = WritebackSummary(unchanged=1, would_write=1,
                                         planned=["KR1 -> jira:OKR-1: comment", "KR1 -> jira:OKR-1: prop"])
    lines = dry_run_lines(summary, [("report.json", Path("/data/s.json"))])
    assert lines[0].startswith("dry run: the sources were read into the store and run 4 recorded")
    assert lines[1:4] == ["  KR1 -> jira:OKR-1: comment", "  KR1 -> jira:OKR-1: prop",
                          "  report.json: write /data/s.json"]
    assert lines[-1] == "dry run: 2 would be written, 1 unchanged"
    summary.writeback = WritebackSummary()
    assert dry_run_lines(summary, [])[-1] == "dry run: 0 would be written, 0 unchanged"


def test_sync_dry_run_help_says_it_reads_and_records():
    opt = next(p for p in cli.commands["sync"].params if p.name == "dry_run")
    assert "record the run" in opt.help and "print each write" in opt.help
