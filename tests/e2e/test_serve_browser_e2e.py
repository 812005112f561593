"""The live dashboard in a real headless Chromium (DevTools protocol over a pipe): values shown, updated in place."""

from __future__ import annotations

import fcntl
import json
import os
import select
import subprocess
import time
from typing import Any

import pytest

from tests.unit.report.test_browser import chromium

from .serve_harness import start_serve, stop_all, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(240)]


class DevTools:
    """Chromium with --remote-debugging-pipe: JSON messages ended by NUL on fds 3 (in) and 4 (out)."""

    def __init__(self, binary: str, url: str, profile: str):
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        # out of the way of 3 and 4, where the child needs them
        child_in = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
        child_out = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
        os.close(to_chrome_r)
        os.close(from_chrome_w)

        def wire() -> None:
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "--window-size=1280,1600", url],
            pass_fds=(3, 4, child_in, child_out), preexec_fn=wire, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(child_in)
        os.close(child_out)
        self.out, self.inp = to_chrome_w, from_chrome_r
        self.buf = b""
        self.next_id = 0
        self.session: str | None = None

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 20.0) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self.out, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(method)
            ready, _, _ = select.select([self.inp], [], [], left)
            if ready:
                chunk = os.read(self.inp, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self.buf += chunk

    def attach(self) -> None:
        page = wait_for(lambda: next((t for t in self.call("Target.getTargets")["targetInfos"]
                                      if t["type"] == "page"), None), 20)
        self.session = self.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result["result"].get("value")

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.out)
        os.close(self.inp)


VALUE = "(document.querySelector('#kr-KR3 .fig-value .v') || {}).innerText"


def test_the_dashboard_shows_values_and_updates_without_a_reload(tmp_path):
    binary = chromium()
    if binary is None:
        pytest.skip("no chromium binary found (apt-get install -y chromium)")
    served = start_serve(tmp_path)
    browser = None
    try:
        before = served.value("KR3")
        browser = DevTools(binary, served.url + "/", str(tmp_path / "profile"))
        browser.attach()
        wait_for(lambda: browser.js(VALUE) == f"{before:.0f}", 30, every=0.2)
        assert browser.js("document.getElementById('kr-KR1') !== null && document.title.length > 0")
        browser.js("window.__sameDocument = 'yes'")  # a reload would lose it
        assert browser.js("document.documentElement.dataset.liveUpdates") == "0"
        served.edits.new_jira_issue(summary="Found in the browser test")
        wait_for(lambda: browser.js(VALUE) == f"{before + 1:.0f}", 30, every=0.2)
        assert browser.js("window.__sameDocument") == "yes"
        assert int(browser.js("document.documentElement.dataset.liveUpdates")) >= 1
        assert browser.js("document.querySelectorAll('#okrsync-live').length") == 1
    finally:
        if browser is not None:
            browser.close()
        assert stop_all(served) == 0
