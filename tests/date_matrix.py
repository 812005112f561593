"""`make test-dates`: the test suite with the clock set by libfaketime at awkward instants (issue 12)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone

# Year end (the run crosses midnight), minutes into a quarter and a year, a quarter start, a leap day,
# and an ordinary Sunday morning.
INSTANTS = [
    "2026-12-31T23:58:00Z",
    "2027-01-01T00:05:00Z",
    "2027-04-01T12:00:00Z",
    "2028-02-29T12:00:00Z",
    "2027-11-07T09:30:00Z",
]

# The scheduler's e2e tests are driven by real timers, which a faked clock breaks (issue 12 leaves them out).
DESELECT = ["tests/e2e/test_scheduler_e2e.py"]


def faked_command(instant: str, pytest_args: list[str]) -> tuple[list[str], dict[str, str]]:
    """faketime with a relative offset: every process (CLI subprocesses, the sandbox) shares one clock
    that ticks from `instant`; monotonic clocks stay real so timeouts and waits behave."""
    target = datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(timezone.utc)
    offset = int(target.timestamp() - time.time())
    shim = os.path.join(os.path.dirname(os.path.abspath(__file__)), "faketime")  # sitecustomize: see there
    path = os.pathsep.join(p for p in (shim, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "FAKETIME_DONT_FAKE_MONOTONIC": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": path}
    cmd = ["faketime", "-f", f"{offset:+d}s", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           *[f"--ignore={p}" for p in DESELECT], *pytest_args]
    return cmd, env


def main(argv: list[str]) -> int:
    if shutil.which("faketime") is None:
        print("date matrix: the faketime command is missing (Debian package faketime)", file=sys.stderr)
        return 2
    instants = [a for a in argv if a[:1].isdigit()] or INSTANTS
    pytest_args = [a for a in argv if not a[:1].isdigit()] or ["tests"]
    failed: list[str] = []
    for instant in instants:
        print(f"\n=== clock at {instant} ===", flush=True)
        cmd, env = faked_command(instant, pytest_args)
        if subprocess.run(cmd, env=env).returncode != 0:
            failed.append(instant)
    if failed:
        print(f"\ndate matrix: failed at {', '.join(failed)} (of {len(instants)} instants)")
    else:
        print(f"\ndate matrix: green at all {len(instants)} instants")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
