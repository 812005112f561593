"""`okrsync serve` in a subprocess on 127.0.0.1 against a live sandbox, for the serve e2e tests and benchmarks."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests
from prometheus_client.parser import text_string_to_metric_families

from okrsync.sandbox import Sandbox
from okrsync.sandbox.webhooks import Edits, WebhookSender

SECRETS = {"jira": "jira-hook-secret-1a2b", "github": "github-hook-secret-3c4d",
           "servicenow": "sn-hook-secret-5e6f", "pagerduty": "pd-hook-secret-7a8b"}
CREDENTIALS = {
    "OKRSYNC_SOURCES__JIRA__TOKEN": "serve-jira-token-7f3a",
    "OKRSYNC_SOURCES__GITHUB__TOKEN": "serve-github-token-9c1b",
    "OKRSYNC_SOURCES__SERVICENOW__USER": "okrsync",
    "OKRSYNC_SOURCES__SERVICENOW__PASSWORD": "serve-sn-password-44d2",
    "OKRSYNC_SOURCES__PAGERDUTY__TOKEN": "serve-pd-token-0e8f",
    **{f"OKRSYNC_SOURCES__{k.upper()}__WEBHOOK_SECRET": v for k, v in SECRETS.items()},
}
WORKSPACE = """\
period: {period}
sources:
  jira: {{type: jira, url: "{jira}", email: bot@acme.example, projects: [APP, OPS, OKR], retry_backoff: 0.01}}
  github: {{type: github, url: "{github}", repos: [acme/web, acme/api, acme/okrs], retry_backoff: 0.01}}
  servicenow: {{type: servicenow, url: "{servicenow}", retry_backoff: 0.01}}
  pagerduty: {{type: pagerduty, url: "{pagerduty}", retry_backoff: 0.01}}
objectives:
  - id: O1
    title: Delivery
    key_results:
      - {{id: KR3, title: Bugs this quarter, metric: count, select: {{source: jira, type: Bug}}, baseline: 200,
          target: 100, writeback: [{{to: jira, issue: OKR-1}}, {{to: github, issue: "acme/okrs#1"}}]}}
      - {{id: KR1, title: Release frequency, metric: deployment_frequency,
          select: {{source: github, environment: production}}, baseline: auto, target: +40%}}
  - id: O2
    title: Service
    key_results:
      - {{id: KR7, title: MTTA, metric: mtta, select: {{source: pagerduty}}, target: 5}}
      - {{id: KR6, title: First-call resolution, metric: first_contact_resolution, select: {{source: servicenow}},
          target: 90%}}
"""


def wait_for(check: Callable[[], Any], timeout: float, every: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy (returned) or `timeout` s pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(every)


@dataclass
class Served:
    sandbox: Sandbox
    dir: Path
    proc: subprocess.Popen
    url: str
    sender: WebhookSender
    edits: Edits
    stderr: list[str] = field(default_factory=list)
    token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.url + path, headers={**self.headers, **kw.pop("headers", {})}, timeout=10, **kw)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        return requests.post(self.url + path, data=body, headers=headers, timeout=10)

    def krs(self) -> dict[str, dict]:
        doc = self.get("/api/status").json()
        return {k["id"]: k for o in doc["objectives"] for k in o["key_results"]}

    def value(self, kr: str) -> float | None:
        return self.krs()[kr]["value"]

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """(sample name, sorted labels) -> value, parsed by prometheus_client's text parser."""
        out = {}
        for family in text_string_to_metric_families(self.get("/metrics").text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def syncs(self, trigger: str) -> int:
        return int(sum(v for (name, labels), v in self.metrics().items()
                       if name == "okrsync_syncs_total" and ("trigger", trigger) in labels))

    def idle(self) -> bool:
        return self.metrics()[("okrsync_sync_in_progress", ())] == 0

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise


def _pump(stream: Any, sink: Callable[[str], None]) -> None:
    for line in iter(stream.readline, ""):
        sink(line)
    stream.close()


def start_serve(workdir: Path, *, every: str = "1h", scale: int = 300, extra_env: dict[str, str] | None = None,
                slow_first_sync: float = 0.0, ready_timeout: float = 60.0,
                sandbox: Sandbox | None = None) -> Served:
    """A live sandbox (its clock follows the wall clock, as incremental syncs expect) and `okrsync serve` on it."""
    sb = sandbox or Sandbox(seed=42, scale=scale)
    sb.start()
    now = sb.now
    period = f"{now.year}-Q{(now.month - 1) // 3 + 1}"
    (workdir / "okrsync.yaml").write_text(WORKSPACE.format(period=period, **sb.urls))
    if slow_first_sync:
        sb.faults.slow(delay=slow_first_sync, system="jira")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}, **CREDENTIALS,
           "OKRSYNC_SECRETS_DIR": str(workdir / "no-secrets"), **(extra_env or {})}
    cmd = [sys.executable, "-m", "okrsync", "--log-level", "info", "serve", "--host", "127.0.0.1", "--port", "0",
           "--every", every, "-w", str(workdir / "okrsync.yaml")]
    proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    stderr: list[str] = []
    threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True).start()
    threading.Thread(target=_pump, args=(proc.stderr, stderr.append), daemon=True).start()
    try:
        first = lines.get(timeout=30)
    except queue.Empty:
        proc.kill()
        sb.stop()
        raise AssertionError(f"okrsync serve printed nothing: {''.join(stderr)}") from None
    assert "listening on http://127.0.0.1:" in first, first + "".join(stderr)
    url = first.split("listening on ", 1)[1].split()[0]
    sender = WebhookSender(sb.world, url, dict(SECRETS), system_urls=sb.urls)
    served = Served(sb, workdir, proc, url, sender, Edits(sb.world, sender), stderr,
                    (extra_env or {}).get("OKRSYNC_SERVE_TOKEN"))
    try:
        if slow_first_sync:
            assert served.get("/healthz").status_code == 503  # readiness: not before the first sync has ended
            sb.faults.clear()
        wait_for(lambda: served.get("/healthz").status_code == 200, ready_timeout)
    except BaseException:
        stop_all(served)
        raise
    return served


def stop_all(served: Served) -> int:
    try:
        return served.stop()
    finally:
        served.sender.close(5)
        served.sandbox.stop()
