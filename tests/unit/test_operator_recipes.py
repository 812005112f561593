"""The container recipes write reports to the data volume, never to the read-only workspace mount."""

import re
from pathlib import Path

import yaml

from okrsync.config.workspace import load_workspace
from okrsync.engine.pipeline import output_paths

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "examples" / "deploy" / "kubernetes"


def mounts() -> dict[str, bool]:
    """mountPath -> readOnly of the CronJob's container."""
    docs = list(yaml.safe_load_all((KUBE / "cronjob.yaml").read_text()))
    job = next(d for d in docs if d["kind"] == "CronJob")
    container = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    return {m["mountPath"]: bool(m.get("readOnly")) for m in container["volumeMounts"]}


def under(path: Path, root: str) -> bool:
    return path == Path(root) or Path(root) in path.parents


def test_the_recipe_workspace_writes_every_report_to_a_writable_volume():
    m = mounts()
    assert m["/config"] is True and m["/data"] is False
    # the workspace is mounted at /config/okrsync.yaml (the image's ENTRYPOINT passes -w /config/okrsync.yaml)
    assert "-w\", \"/config/okrsync.yaml\"" in (ROOT / "Dockerfile").read_text()
    loaded = load_workspace(KUBE / "okrsync.yaml")
    loaded.path = Path("/config/okrsync.yaml")
    paths = output_paths(loaded)
    assert {s for s, _ in paths} == {"report.path", "report.json"}
    for setting, path in paths:
        writable = [root for root, ro in m.items() if not ro and under(path, root)]
        assert writable == ["/data"], (setting, path)
        assert not under(path, "/config")


def test_a_relative_report_path_would_land_on_the_read_only_mount():
    loaded = load_workspace(KUBE / "okrsync.yaml")
    loaded.path = Path("/config/okrsync.yaml")
    loaded.workspace.report.path = "report.html"
    assert dict(output_paths(loaded))["report.path"] == Path("/config/report.html")


def test_the_dockerfile_volume_holds_the_store_and_the_recipe_reports():
    text = (ROOT / "Dockerfile").read_text()
    assert 'VOLUME ["/data"]' in text and "OKRSYNC_DB=/data/okrsync.db" in text
    assert re.search(r"report: \{path: /data/report\.html", text)
    assert "report: {path: /data/report.html" in (KUBE / "cronjob.yaml").read_text()
