"""Auth modes through the real CLI: ServiceNow OAuth (a token dies mid-run), a GitHub App, PagerDuty OAuth."""

from __future__ import annotations

import sqlite3

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from okrsync.sandbox import Sandbox

from .conftest import NOW, TOKENS, WORKSPACE, Env, snapshot

pytestmark = pytest.mark.e2e

SN_LINE = 'servicenow: {{type: servicenow, url: "{servicenow}", retry_backoff: 0.01{extra}}}'
GH_LINE = ('github: {{type: github, url: "{github}", repos: [acme/web, acme/api, acme/okrs], '
           'retry_backoff: 0.01{extra}}}')
PD_LINE = 'pagerduty: {{type: pagerduty, url: "{pagerduty}", retry_backoff: 0.01{extra}}}'
SN_SECRET = "e2e-sn-client-secret-5a1f"
PD_OAUTH = "pdus+_e2e-oauth-token-31f0"


def workspace(line: str, settings: str) -> str:
    assert line in WORKSPACE
    return WORKSPACE.replace(line, line.replace("{extra}}}", settings + "{extra}}}"))


def dump(db) -> str:
    conn = sqlite3.connect(db)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture
def sandbox(request):
    """The system under test (the parameter) takes only its own credentials; the others any token."""
    system = request.param
    required = {"servicenow": TOKENS["OKRSYNC_SOURCES__SERVICENOW__PASSWORD"], "github": "only-app-tokens-here",
                "pagerduty": "only-oauth-here"}
    sb = Sandbox(seed=42, scale=300, now=NOW, require_token={system: required[system]})
    sb.start()
    yield sb
    sb.stop()


@pytest.mark.parametrize("sandbox", ["servicenow"], indirect=True)
def test_servicenow_oauth_renews_a_token_that_dies_mid_run(sandbox, tmp_path):
    oauth = sandbox.apps["servicenow"].oauth
    oauth.clients = {"okrsync-client": SN_SECRET}
    e = Env(sandbox, tmp_path)
    e.write_workspace(workspace(SN_LINE, ", auth: oauth, client_id: okrsync-client, page_size: 10"))
    env = {"OKRSYNC_SOURCES__SERVICENOW__CLIENT_SECRET": SN_SECRET}

    for command in ("validate", "sync"):
        r = e.run(command, "--source", "servicenow") if command == "sync" else e.run(command)
        assert r.returncode == 2, (command, r.stderr)
        assert ("okrsync: servicenow: no credentials for OAuth (password grant): set "
                "OKRSYNC_SOURCES__SERVICENOW__CLIENT_SECRET") in r.stderr.splitlines()

    oauth.tokens.expire_all(after=3)  # the token stops working after 3 requests, whatever expires_in said
    r = e.run("sync", "--source", "servicenow", env=env)
    assert r.returncode == 0, r.stderr
    log = sandbox.requests("servicenow")
    table = [x for x in log if x["path"].startswith("/api/now/table/")]
    grants = [x for x in log if x["path"] == "/oauth_token.do"]
    # the requests in flight when the token died (at most the source's concurrency, 4) each got one 401; the
    # token was renewed once for all of them (below), and each page was read again
    assert 1 <= [x["status"] for x in table].count(401) <= 4
    assert table[-1]["status"] == 200 and len(table) >= 6
    assert len(grants) == 2 and oauth.tokens.issued == 2
    assert [f["grant_type"] for f in oauth.requests] == ["password", "password"]

    # the same incidents as with basic auth against an identical sandbox
    clean = Sandbox(seed=42, scale=300, now=NOW)
    clean.start()
    try:
        e2 = Env(clean, tmp_path / "basic")
        e2.dir.mkdir()
        e2.write_workspace()
        assert e2.run("sync", "--source", "servicenow").returncode == 0
        assert snapshot(e.target)["incidents"] == snapshot(e2.target)["incidents"] != []
    finally:
        clean.stop()
    text = r.stdout + r.stderr + dump(e.db)
    assert SN_SECRET not in text and not any(t in text for t in oauth.tokens._tokens)


@pytest.mark.parametrize("sandbox", ["servicenow"], indirect=True)
def test_servicenow_client_credentials_with_short_lived_tokens(sandbox, tmp_path):
    oauth = sandbox.apps["servicenow"].oauth
    oauth.clients = {"okrsync-client": SN_SECRET}
    oauth.ttl = 2.0  # announced as expires_in 1: renewed a quarter of that ahead of the end
    sandbox.faults.slow(0.25, system="servicenow", path="/api/now/table/")
    e = Env(sandbox, tmp_path)
    e.write_workspace(workspace(SN_LINE, ", auth: oauth, grant: client_credentials, client_id: okrsync-client, "
                                         "page_size: 10"))
    r = e.run("sync", "--source", "servicenow", env={"OKRSYNC_SOURCES__SERVICENOW__CLIENT_SECRET": SN_SECRET,
                                                     "OKRSYNC_SOURCES__SERVICENOW__PASSWORD": ""})
    assert r.returncode == 0, r.stderr
    # renewed ahead of the end, never refused; ServiceNow hands back the still-valid token with a new expiry
    # (KB0791140), so the grants outnumber the tokens
    assert len(oauth.requests) >= 2 and oauth.tokens.refused == []
    assert [x["status"] for x in sandbox.requests("servicenow") if x["path"].startswith("/api/")].count(401) == 0
    assert {f["grant_type"] for f in oauth.requests} == {"client_credentials"}
    assert all("username" not in f and "password" not in f for f in oauth.requests)


@pytest.fixture
def app_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return pem, public


@pytest.mark.parametrize("sandbox", ["github"], indirect=True)
def test_github_app_installation_tokens(sandbox, tmp_path, app_key):
    pem, public = app_key
    apps = sandbox.apps["github"].app_auth
    apps.register(4242, public, installation_id=777)
    e = Env(sandbox, tmp_path)
    e.write_workspace(workspace(GH_LINE, ", auth: app, app_id: 4242, installation_id: 777"))
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    env = {"OKRSYNC_SECRETS_DIR": str(secrets), "OKRSYNC_SOURCES__GITHUB__TOKEN": ""}

    r = e.run("validate", env=env)
    assert r.returncode == 2
    assert ("okrsync: github: the GitHub App needs the private key in OKRSYNC_SOURCES__GITHUB__PRIVATE_KEY (or a PEM "
            "file named by OKRSYNC_SOURCES__GITHUB__PRIVATE_KEY_FILE)") in r.stderr.splitlines()

    (secrets / "OKRSYNC_SOURCES__GITHUB__PRIVATE_KEY").write_text(pem)  # a secrets file, never the workspace
    apps.tokens.expire_all(after=10)  # an installation token revoked mid-run
    r = e.run("sync", "--source", "github", env=env)
    assert r.returncode == 0, r.stderr
    log = [x for x in sandbox.requests("github") if not x["path"].startswith("/app/")]
    minted = [x for x in sandbox.requests("github") if x["path"] == "/app/installations/777/access_tokens"]
    assert [x["status"] for x in minted] == [201] * len(minted) and len(minted) >= 2
    assert [x["status"] for x in log].count(401) == 1 and len(log) > 20
    assert {c["iss"] for c in apps.jwts} == {"4242"}
    r = e.run("status", "--json", env=env)
    assert r.returncode == 0
    text = r.stdout + r.stderr + dump(e.db)
    assert "BEGIN PRIVATE KEY" not in text and not any(t in text for t in apps.tokens._tokens)

    r = e.run("validate", "--online", env=env)
    assert "github: ok — GitHub App installation token accepted" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("sandbox", ["pagerduty"], indirect=True)
def test_pagerduty_oauth_token_is_sent_as_bearer(sandbox, tmp_path):
    sandbox.apps["pagerduty"].oauth_tokens.add(PD_OAUTH)
    e = Env(sandbox, tmp_path)
    env = {"OKRSYNC_SOURCES__PAGERDUTY__TOKEN": PD_OAUTH}
    e.write_workspace()  # auth: api_key (the default) sends the OAuth token as `Token token=`: refused
    r = e.run("sync", "--source", "pagerduty", env=env)
    assert r.returncode != 0
    assert "okrsync: pagerduty: authentication failed for" in r.stderr
    sandbox.reset_log()
    e.write_workspace(workspace(PD_LINE, ", auth: oauth"))
    r = e.run("sync", "--source", "pagerduty", env=env)
    assert r.returncode == 0, r.stderr
    statuses = {x["status"] for x in sandbox.requests("pagerduty")}
    assert statuses == {200}
    assert PD_OAUTH not in r.stdout + r.stderr + dump(e.db)
