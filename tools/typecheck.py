"""`make lint`'s type check: mypy over the installed package layout (okrsync.engine is the engine/ folder)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPED = ("connectors", "engine", "mappings", "config", "domain")  # [tool.setuptools.package-dir] in pyproject.toml


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="okrsync-typecheck-") as tmp:
        pkg = Path(tmp) / "okrsync"
        pkg.mkdir()
        for entry in (ROOT / "okrsync").iterdir():
            (pkg / entry.name).symlink_to(entry)
        for name in MAPPED:
            (pkg / name).symlink_to(ROOT / name)
        env = {**os.environ, "MYPYPATH": tmp}
        cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "-p", "okrsync"]
        return subprocess.run(cmd, cwd=tmp, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
