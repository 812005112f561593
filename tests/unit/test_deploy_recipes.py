"""The deployment recipes parse, and every okrsync command they run exists with those options."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from okrsync.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "examples" / "deploy"


def okrsync_commands(text: str) -> list[list[str]]:
    out = []
    for line in text.splitlines():
        line = line.split(" #")[0] if not line.lstrip().startswith("#") else ""
        for m in re.finditer(r"(?:^|[\s/;&|(])okrsync\s+([^;&|>]*)", line):
            out.append(shlex.split(m.group(1)))
    return out


def check(args: list[str]) -> str:
    """Walk the args like click would: group options, the command, its options; return the command."""
    group_opts = {o for p in cli.params for o in p.opts}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        assert args[i] in group_opts, f"unknown global option {args[i]}"
        param = next(p for p in cli.params if args[i] in p.opts)
        i += 1 if getattr(param, "is_flag", False) else 2
    assert i < len(args), f"no command in {args}"
    name = args[i]
    assert name in cli.commands, f"unknown command {name}"
    opts = {o for p in cli.commands[name].params for o in p.opts}
    for a in args[i + 1:]:
        if a.startswith("-"):
            assert a.split("=")[0] in opts, f"okrsync {name}: unknown option {a}"
    return name


def test_crontab_lines_run_real_commands():
    cmds = okrsync_commands((DEPLOY / "crontab").read_text())
    assert [check(c) for c in cmds] == ["run", "report"]
    for line in (DEPLOY / "crontab").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert len(line.split()[:5]) == 5


def test_kubernetes_cronjob():
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "cronjob.yaml").read_text()))
    job = next(d for d in docs if d["kind"] == "CronJob")
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    # the image's ENTRYPOINT is okrsync with global options; args are the command
    entry = re.search(r'ENTRYPOINT \[(.*)\]', (ROOT / "Dockerfile").read_text()).group(1)
    entry_args = [a.strip().strip('"') for a in entry.split(",")][1:]
    check(entry_args + container["args"])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/config", "/data", "/run/secrets/okrsync"} <= mounts


def test_github_actions_workflow():
    wf = yaml.safe_load((DEPLOY / "github-actions" / "okrsync.yml").read_text())
    assert wf[True]["schedule"][0]["cron"]  # YAML 1.1 reads the key 'on' as True
    steps = wf["jobs"]["sync"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert [check(c) for c in okrsync_commands(runs)] == ["sync", "report", "status"]


def test_dockerfile_is_small_non_root_with_a_volume():
    text = (ROOT / "Dockerfile").read_text()
    assert "USER okrsync" in text
    assert 'VOLUME ["/data"]' in text
    assert "OKRSYNC_SECRETS_DIR=/run/secrets/okrsync" in text
    assert text.count("FROM ") == 2  # build stage + slim runtime


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "examples").rglob("*.yaml") if "deploy" not in p.parts))
def test_example_workspaces_validate(path):
    from okrsync.config.workspace import load_workspace

    load_workspace(path)


def test_demo_template_is_the_example():
    assert (ROOT / "okrsync" / "templates" / "demo.yaml").read_text() == (ROOT / "examples" / "demo" / "okrsync.yaml").read_text()


def test_kubernetes_company_recipe_a_cronjob_per_source_and_one_recompute_on_postgresql():
    from okrsync.config.workspace import load_workspace

    folder = DEPLOY / "kubernetes" / "company"
    ws = load_workspace(folder / "okrsync.yaml").workspace
    assert ws.name  # its schema in the shared database
    jobs = [d for d in yaml.safe_load_all((folder / "company.yaml").read_text()) if d["kind"] == "CronJob"]
    entry = re.search(r'ENTRYPOINT \[(.*)\]', (ROOT / "Dockerfile").read_text()).group(1)
    entry_args = [a.strip().strip('"') for a in entry.split(",")][1:]
    commands = []
    for job in jobs:
        assert job["spec"]["concurrencyPolicy"] == "Forbid"
        pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        commands.append((check(entry_args + container["args"]), container["args"]))
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["OKRSYNC_DB"].startswith("postgresql://") and ":" not in env["OKRSYNC_DB"].split("@")[0][13:]
        assert "/run/secrets/okrsync" in {m["mountPath"] for m in container["volumeMounts"]}
    synced = sorted(args[args.index("--source") + 1] for name, args in commands if name == "sync")
    assert synced == sorted(ws.sources)
    assert [name for name, _ in commands].count("recompute") == 1


def test_docker_compose_starts_postgresql_and_okrsync():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    app = services["okrsync"]
    assert app["environment"]["OKRSYNC_DB"].startswith("postgresql://okrsync@postgres")
    assert any(s["target"] == "/run/secrets/okrsync/OKRSYNC_DB_PASSWORD" for s in app["secrets"])
    entry = re.search(r'ENTRYPOINT \[(.*)\]', (ROOT / "Dockerfile").read_text()).group(1)
    check([a.strip().strip('"') for a in entry.split(",")][1:] + app["command"])
