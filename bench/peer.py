"""The peer: meltanolabs-tap-github syncing the same GitHub issues from the sandbox, in its own venv.

The venv (bench/.peer-venv, git-ignored) is created on first use with the peer pinned, so the peer never
touches okrsync's dependencies. Pointing it at the sandbox needs two things the sandbox provides: `api_url_base`
(the tap's own setting), and no token (the tap validates tokens against api.github.com itself; the sandbox
serves anonymous reads). The tap resolves repository ids with one GraphQL query, then lists
/repos/{o}/{r}/issues?state=all&sort=updated&direction=asc&since=... following Link rel="next" cursors.
It writes Singer messages to stdout (discarded here); okrsync writes its SQLite store.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from .procs import Measured, SandboxProcess, measure

PEER = "meltanolabs-tap-github==1.30.1"
VENV = Path(__file__).resolve().parent / ".peer-venv"


def ensure_venv() -> Path:
    """The tap's executable, installing it into bench/.peer-venv when missing."""
    tap = VENV / "bin" / "tap-github"
    if not tap.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", PEER], check=True,
                       capture_output=True)
    return tap


def _catalog(tap: Path, config: Path, work: Path) -> Path:
    """Discover the catalog and select the issues stream (and its parent, repositories)."""
    out = subprocess.run([str(tap), "--config", str(config), "--discover"], check=True, capture_output=True,
                         text=True).stdout
    catalog = json.loads(out)
    catalog["streams"] = [s for s in catalog["streams"] if s["tap_stream_id"] in ("issues", "repositories")]
    for stream in catalog["streams"]:
        for meta in stream["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = True
    path = work / "catalog.json"
    path.write_text(json.dumps(catalog), encoding="utf-8")
    return path


def run(sb: SandboxProcess, work: Path) -> dict[str, Any]:
    """One full sync of acme/web + acme/api issues by the peer: wall, requests, peak RSS, records."""
    tap = ensure_venv()
    config = work / "peer-config.json"
    config.write_text(json.dumps({"repositories": ["acme/web", "acme/api"], "api_url_base": sb.urls["github"],
                                  "start_date": "2000-01-01T00:00:00Z"}), encoding="utf-8")
    catalog = _catalog(tap, config, work)
    sb.reset_log()
    env: dict[str, str | None] = {k: None for k in ("GITHUB_TOKEN", "TAP_GITHUB_AUTH_TOKEN")}
    m: Measured = measure([str(tap), "--config", str(config), "--catalog", str(catalog)], env=env, cwd=work,
                          discard_stdout=True)
    records = sum(int(v) for v in re.findall(r'"metric":\s*"record_count",\s*"value":\s*(\d+),\s*"tags":\s*'
                                             r'\{"stream":\s*"issues"', m.result.get("stderr", "")))
    return {"wall": m.wall, "peak_rss_mb": m.peak_rss_mb, "requests": len(sb.requests("github")),
            "records": records}
