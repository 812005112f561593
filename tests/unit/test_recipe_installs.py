"""Each deployment recipe's install step, run against this checkout: okrsync is not on PyPI, so none may need it."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "examples" / "deploy"


def checkout(dest: Path) -> Path:
    """A copy of the repository's files (tracked and new, not ignored), as a clone or `actions/checkout` has."""
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                         capture_output=True, text=True, check=True).stdout
    for name in filter(None, out.split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def pip(*args: str) -> None:
    """pip without the network: the build backend and dependencies come from this environment."""
    r = subprocess.run([sys.executable, "-m", "pip", *args, "--no-deps", "--no-build-isolation", "--no-index", "-q"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def installed_okrsync_runs(target: Path) -> None:
    """The installed copy (not the checkout's editable install) imports every command and answers --version."""
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import okrsync, okrsync.cli as c; print(okrsync.__file__); c.cli(['--version'], prog_name='okrsync')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=target, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines()[0].startswith(str(target)), r.stdout
    assert "okrsync, version" in r.stdout


def pip_installs(text: str) -> list[list[str]]:
    """The `pip install ...` commands in a shell text (one per line or after && / ;)."""
    out = []
    for part in re.split(r"&&|;|\n", text):
        try:
            words = shlex.split(part, comments=True)
        except ValueError:  # a line continuation or a quote that spans lines
            words = part.split()
        if "pip" in [Path(w).name for w in words[:2]] and "install" in words:
            out.append(words[words.index("install") + 1:])
    return out


def test_no_recipe_installs_okrsync_from_an_index():
    texts = {p: p.read_text() for p in [*DEPLOY.rglob("*"), ROOT / "Dockerfile"] if p.is_file()}
    for path, text in texts.items():
        for args in pip_installs(text):
            assert "okrsync" not in [a.split("==")[0] for a in args], f"{path}: pip install {' '.join(args)}"


@pytest.mark.slow
def test_github_actions_recipe_installs_from_its_checkout_of_okrsync(tmp_path):
    wf = yaml.safe_load((DEPLOY / "github-actions" / "okrsync.yml").read_text())
    steps = wf["jobs"]["sync"]["steps"]
    src = next(s for s in steps if s.get("uses", "").startswith("actions/checkout")
               and s.get("with", {}).get("path"))
    path = src["with"]["path"]
    install = next(s for s in steps if s.get("name") == "Install okrsync")["run"]
    assert pip_installs(install) == [[f"./{path}"]]
    assert steps.index(src) < steps.index(next(s for s in steps if s.get("name") == "Install okrsync"))
    work = tmp_path / "job"  # the job's workspace: the OKR repository, okrsync checked out under `path`
    checkout(work / path)
    pip("install", "--target", str(tmp_path / "site"), str(work / path))
    installed_okrsync_runs(tmp_path / "site")


@pytest.mark.slow
def test_crontab_recipe_install_line_installs_the_checkout(tmp_path):
    text = (DEPLOY / "crontab").read_text()
    comments = "\n".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    installs = pip_installs(comments)
    assert len(installs) == 1 and installs[0][0].startswith("/"), installs  # a local path, not a package name
    pip("install", "--target", str(tmp_path / "site"), str(checkout(tmp_path / "src")))
    installed_okrsync_runs(tmp_path / "site")


def dockerfile_copies() -> list[tuple[str, str]]:
    """(source, destination) of the build stage's COPY lines."""
    text = (ROOT / "Dockerfile").read_text().split("\nFROM ", 2)[1]
    out = []
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            *srcs, dest = line.split()[1:]
            out += [(s, dest) for s in srcs]
    return out


@pytest.mark.slow
def test_dockerfile_build_stage_builds_a_wheel_that_installs(tmp_path):
    """The build stage's COPY lines and `pip wheel .`, replayed in a directory (what the image build does)."""
    src = tmp_path / "src"
    src.mkdir()
    for name, dest in dockerfile_copies():
        target = src / dest.removeprefix("./") if dest != "./" else src
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, target / name if dest.endswith("/") else target)
    assert "RUN pip wheel --no-cache-dir --wheel-dir /wheels ." in (ROOT / "Dockerfile").read_text()
    pip("wheel", "--wheel-dir", str(tmp_path / "wheels"), str(src))
    wheel = next((tmp_path / "wheels").glob("okrsync-*.whl"))
    pip("install", "--target", str(tmp_path / "site"), str(wheel))
    installed_okrsync_runs(tmp_path / "site")


def docker_engine() -> str | None:
    """Why the image cannot be built here, or None when a Docker engine answers."""
    if shutil.which("docker") is None:
        return "no Docker engine on this machine (no docker command): the image build is not tested here"
    r = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return "no Docker engine answers on this machine (docker info failed): the image build is not tested here"
    return None


@pytest.mark.slow
def test_docker_image_builds_and_runs():
    reason = docker_engine()
    if reason:
        pytest.skip(reason)
    tag = "okrsync-recipe-test:latest"
    r = subprocess.run(["docker", "build", "-q", "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run(["docker", "run", "--rm", "--entrypoint", "okrsync", tag, "--version"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "okrsync, version" in r.stdout, r.stderr
