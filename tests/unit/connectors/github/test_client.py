"""GitHubClient over HttpClient: headers, Link paging, ETag, rate limits with a fake clock, one-line errors."""

import json

import pytest
import responses
from responses import matchers

from okrsync.config.settings import SourceCredentials
from okrsync.connectors.base import AuthError, ConnectorOptions, SourceError
from okrsync.connectors.github.client import RepoNotFound
from okrsync.connectors.github.connector import build

from .support import API, TOKEN, FakeClock, config, connector, replay

URL = f"{API}/repos/acme/web/pulls"


def test_headers_auth_and_api_version():
    conn = connector()
    with responses.RequestsMock() as rsps:
        rsps.get(URL, json=[])
        conn.client.list_page("repos/acme/web/pulls", what="repository acme/web")
        h = rsps.calls[0].request.headers
    assert h["Authorization"] == f"Bearer {TOKEN}"
    assert h["Accept"] == "application/vnd.github+json"
    assert h["X-GitHub-Api-Version"] == "2022-11-28"
    assert "If-None-Match" not in h


def test_anonymous_only_for_loopback():
    conn = build("github", config(url="http://127.0.0.1:8765"), SourceCredentials(), ConnectorOptions())
    with responses.RequestsMock() as rsps:
        rsps.get("http://127.0.0.1:8765/repos/acme/web/pulls", json=[])
        conn.client.list_page("repos/acme/web/pulls", what="repository acme/web")
        assert "Authorization" not in rsps.calls[0].request.headers
    with pytest.raises(AuthError, match=r"^github: no token: set OKRSYNC_SOURCES__GITHUB__TOKEN$"):
        build("github", config(), SourceCredentials(), ConnectorOptions())


def test_ghes_base_url():
    conn = connector(config(url="https://ghe.acme.io/api/v3"))
    with responses.RequestsMock() as rsps:
        rsps.get("https://ghe.acme.io/api/v3/repos/acme/web/pulls", json=[{"id": 1}])
        assert conn.client.list_page("repos/acme/web/pulls", what="x").items == [{"id": 1}]


def test_link_header_paging_three_pages():
    conn = connector()
    with responses.RequestsMock() as rsps:
        rsps.get(URL, json=[{"id": 1}, {"id": 2}], headers={"Link": f'<{URL}?per_page=2&page=2>; rel="next", '
                                                                  f'<{URL}?per_page=2&page=3>; rel="last"'},
                 match=[matchers.query_param_matcher({"per_page": "2"})])
        rsps.get(URL, json=[{"id": 3}, {"id": 4}], headers={"Link": f'<{URL}?per_page=2&page=3>; rel="next"'},
                 match=[matchers.query_param_matcher({"per_page": "2", "page": "2"})])
        rsps.get(URL, json=[{"id": 5}], headers={"Link": f'<{URL}?per_page=2&page=1>; rel="first"'},
                 match=[matchers.query_param_matcher({"per_page": "2", "page": "3"})])
        pages = list(conn.client.pages("repos/acme/web/pulls", what="x", params={"per_page": 2}))
    assert [i["id"] for p in pages for i in p.items] == [1, 2, 3, 4, 5]
    assert conn.requests_made == 3


def test_next_link_to_another_host_is_refused():
    conn = connector()
    with responses.RequestsMock() as rsps:
        rsps.get(URL, json=[{"id": 1}], headers={"Link": '<https://evil.example/x?page=2>; rel="next"'})
        with pytest.raises(SourceError, match="another host"):
            list(conn.client.pages("repos/acme/web/pulls", what="x"))


def test_etag_conditional_request_and_304():
    conn = connector()
    with responses.RequestsMock() as rsps:
        rsps.get(URL, status=304, headers={"ETag": 'W/"abc"'},
                 match=[matchers.header_matcher({"If-None-Match": 'W/"abc"'})])
        page = conn.client.list_page("repos/acme/web/pulls", what="x", etag='W/"abc"')
    assert page.not_modified and page.items == []


def test_rate_limit_exhausted_waits_for_reset_before_next_request():
    clock, waits = FakeClock(), []
    conn = connector(clock=clock, waits=waits)
    reset = int(clock.now) + 30
    with responses.RequestsMock() as rsps:
        rsps.get(URL, json=[], headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})
        rsps.get(f"{API}/repos/acme/web/issues", json=[])
        conn.client.list_page("repos/acme/web/pulls", what="x")
        assert clock.sleeps == []
        conn.client.list_page("repos/acme/web/issues", what="x")
    assert clock.sleeps == [pytest.approx(31.0)]
    assert waits and waits[0][0].startswith("github: rate limit exhausted")


def test_secondary_rate_limit_403_with_retry_after_waits_and_retries():
    clock = FakeClock()
    conn = connector(clock=clock)
    with responses.RequestsMock() as rsps:
        rsps.get(URL, status=403, headers={"Retry-After": "5"},
                 json={"message": "You have exceeded a secondary rate limit. Please wait a few minutes."})
        rsps.get(URL, json=[{"id": 1}])
        page = conn.client.list_page("repos/acme/web/pulls", what="x")
    assert page.items == [{"id": 1}]
    assert len(clock.sleeps) == 1 and 5.0 <= clock.sleeps[0] <= 5.25
    assert conn.requests_made == 2


def test_real_primary_rate_limit_403_without_reset_waits_a_minute():
    ex = {e["status"]: e for e in replay("SpecificExceptions.testRateLimitExceeded.txt")}
    clock = FakeClock()
    conn = connector(clock=clock)
    with responses.RequestsMock() as rsps:
        for status in (403, 200):
            e = ex[status]
            headers = {k: v for k, v in e["headers"].items() if k not in ("status", "content-length")}
            rsps.get(f"{API}/users/jacquev6", status=status, body=json.dumps(e["body"]), headers=headers)
        body, _ = conn.client.call("GET", "users/jacquev6", what="user")
    assert body["login"] == "jacquev6"
    assert len(clock.sleeps) == 1 and 60.0 <= clock.sleeps[0] <= 60.25


def test_bad_token_is_one_line_without_the_token():
    conn = connector()
    with responses.RequestsMock() as rsps:
        rsps.get(URL, status=401, json={"message": "Bad credentials"})
        with pytest.raises(AuthError) as exc:
            conn.client.list_page("repos/acme/web/pulls", what="repository acme/web")
    assert str(exc.value) == ("github: authentication failed for https://api.github.com "
                              "(check OKRSYNC_SOURCES__GITHUB__TOKEN)")
    assert TOKEN not in str(exc.value)


def test_missing_repo_is_one_line():
    conn = connector()
    with responses.RequestsMock() as rsps:
        rsps.get(f"{API}/repos/acme/nope/issues", status=404, json={"message": "Not Found"})
        with pytest.raises(RepoNotFound) as exc:
            conn.client.list_page("repos/acme/nope/issues", what="repository acme/nope")
    assert str(exc.value) == "github: repository acme/nope not found (or the token cannot see it)"


def test_server_errors_are_retried_once_layer_with_fake_sleep():
    clock = FakeClock()
    conn = connector(clock=clock)
    with responses.RequestsMock() as rsps:
        rsps.get(URL, status=502)
        rsps.get(URL, body="<html>not json</html>")
        rsps.get(URL, json=[])
        conn.client.list_page("repos/acme/web/pulls", what="x")
    assert conn.requests_made == 3 and len(clock.sleeps) == 2


@pytest.mark.parametrize("total,pages", [(0, 1), (1, 1), (100, 1), (101, 2), (260, 3), (400, 4)])
def test_compare_always_pages_explicitly_from_the_earliest_commit(total, pages):
    # an unpaged call would answer the LAST 250 commits: it is never made
    conn = connector()
    shas = [f"{i:040x}" for i in range(1, total + 1)]
    path = f"{API}/repos/acme/web/compare/{'b' * 40}...{'c' * 40}"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(path, json={"total_commits": total, "commits": [{"sha": s} for s in shas[-250:]]},
                 match=[matchers.query_param_matcher({})])
        for n in range(1, pages + 1):
            rsps.get(path, json={"total_commits": total,
                                 "commits": [{"sha": s} for s in shas[(n - 1) * 100: n * 100]]},
                     match=[matchers.query_param_matcher({"per_page": "100", "page": str(n)})])
        got = conn.client.compare("acme/web", "b" * 40, "c" * 40)
        assert [c.request.params for c in rsps.calls] == [{"per_page": "100", "page": str(n)}
                                                          for n in range(1, pages + 1)]
    assert got == shas


def test_compare_stops_when_a_page_comes_back_empty():
    conn = connector()
    path = f"{API}/repos/acme/web/compare/{'b' * 40}...{'c' * 40}"
    with responses.RequestsMock() as rsps:
        rsps.get(path, json={"total_commits": 300, "commits": [{"sha": f"{i:040x}"} for i in range(100)]},
                 match=[matchers.query_param_matcher({"per_page": "100", "page": "1"})])
        rsps.get(path, json={"total_commits": 300, "commits": []},
                 match=[matchers.query_param_matcher({"per_page": "100", "page": "2"})])
        got = conn.client.compare("acme/web", "b" * 40, "c" * 40)
    assert got == [f"{i:040x}" for i in range(100)]
