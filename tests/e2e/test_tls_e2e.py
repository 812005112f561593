"""TLS verification stays on: a self-signed server is refused, and accepted with its CA bundle (flag or setting)."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import TOKENS

pytestmark = pytest.mark.e2e

WS = """\
period: 2026-Q4
sources:
  pagerduty: {{type: pagerduty, url: "https://127.0.0.1:{port}", retry_backoff: 0.01, max_attempts: 2{extra}}}
objectives:
  - id: O1
    title: t
    key_results:
      - {{id: KR1, title: MTTA, metric: mtta, select: {{source: pagerduty}}, target: 5}}
"""


class PagerDutyStub(BaseHTTPRequestHandler):
    """Just enough PagerDuty for a sync over TLS: no incidents."""

    def do_GET(self):  # noqa: N802
        body = json.dumps({"incidents": [], "limit": 100, "offset": 0, "more": False, "total": None,
                           "log_entries": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def tls_server(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), PagerDutyStub)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], cert
    server.shutdown()


def test_self_signed_is_refused_then_trusted_with_the_bundle(env, tls_server):
    port, cert = tls_server
    env.workspace.write_text(WS.format(port=port, extra=""))
    r = env.run("sync")
    assert r.returncode == 1
    assert f"okrsync: pagerduty: TLS verification failed for https://127.0.0.1:{port}/incidents" in r.stderr
    assert "ca_bundle" in r.stderr
    # the global flag (before the command)
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}, **TOKENS,
                "OKRSYNC_SECRETS_DIR": str(env.dir / "none")}
    r = subprocess.run([sys.executable, "-m", "okrsync", "--ca-bundle", str(cert), "sync", "-w", str(env.workspace)],
                       env=full_env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    env.workspace.write_text(WS.format(port=port, extra=f', ca_bundle: "{cert}"'))
    r = env.run("sync")
    assert r.returncode == 0, r.stderr
