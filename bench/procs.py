"""Child processes of the benchmarks: the sandbox server, measured runs (wall time and peak RSS via wait4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent


class SandboxProcess:
    """`python -m bench.serve` at a scale; its request log is read over the control endpoints."""

    def __init__(self, scale: int, seed: int = 42, deployments: int | None = None):
        extra = ["--deployments", str(deployments)] if deployments is not None else []
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.serve", "--scale", str(scale), "--seed", str(seed),
                                      *extra],
                                     cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise RuntimeError("the sandbox process did not start")
        self.info: dict[str, Any] = json.loads(line)
        self.urls: dict[str, str] = self.info["urls"]
        self.scale = scale

    def _call(self, method: str, path: str) -> Any:
        req = urllib.request.Request(self.urls["jira"] + path, method=method)
        with urllib.request.urlopen(req, timeout=60) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def cpu(self) -> float:
        """CPU seconds the sandbox process has used so far."""
        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def reset_log(self) -> None:
        """Clear the request log and the peaks of requests in flight."""
        self._call("POST", "/_sandbox/reset-log")

    def set_latency(self, ms: float, jitter_ms: float = 0.0) -> None:
        req = urllib.request.Request(self.urls["jira"] + "/_sandbox/latency", method="POST",
                                     data=json.dumps({"ms": ms, "jitter_ms": jitter_ms}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60):
            pass

    def peak_in_flight(self) -> dict[str, int]:
        return self._call("GET", "/_sandbox/in-flight")["peak"]

    def requests(self, system: str) -> list[dict]:
        return self._call("GET", f"/_sandbox/log?system={system}")["requests"]

    def close(self) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "SandboxProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class Measured:
    wall: float
    peak_rss_mb: float
    result: dict[str, Any] = field(default_factory=dict)


def measure(argv: list[str], *, env: dict[str, str | None] | None = None, cwd: Path | None = None,
            discard_stdout: bool = False) -> Measured:
    """Run a child to its end: wall time, its own peak RSS (wait4's ru_maxrss) and the JSON it printed last
    (result["stderr"] holds the tail of its stderr)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        full = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}  # None: unset it
        proc = subprocess.Popen(argv, cwd=cwd or ROOT, env=full, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL if discard_stdout else out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, problems = out.read(), err.read()
    if code:
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {code}: {problems[-1500:]}")
    lines = [line for line in text.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    result.setdefault("stderr", problems[-200_000:])
    return Measured(wall, usage.ru_maxrss / 1024.0, result)


def child(*args: str) -> list[str]:
    """argv of `python -m bench.child ...` (okrsync's side of a measurement)."""
    return [sys.executable, "-m", "bench.child", *args]
