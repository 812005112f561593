"""The Kubernetes recipe for `okrsync serve` parses and runs a real command with real options."""

from __future__ import annotations

import re

import yaml

from tests.unit.test_deploy_recipes import DEPLOY, ROOT, check


def test_kubernetes_deployment_and_service():
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "serve.yaml").read_text())}
    assert {"Deployment", "Service", "PersistentVolumeClaim"} <= set(docs)
    dep = docs["Deployment"]["spec"]
    assert dep["replicas"] == 1 and dep["strategy"]["type"] == "Recreate"  # one writer on the SQLite store
    pod = dep["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] >= 40  # room for the 30 s drain
    container = pod["containers"][0]
    entry = re.search(r'ENTRYPOINT \[(.*)\]', (ROOT / "Dockerfile").read_text()).group(1)
    entry_args = [a.strip().strip('"') for a in entry.split(",")][1:]
    assert check(entry_args + container["args"]) == "serve"
    args = container["args"]
    assert args[args.index("--host") + 1] == "0.0.0.0"  # hence the token in the Secret
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/config", "/data", "/run/secrets/okrsync"} <= mounts
    text = (DEPLOY / "kubernetes" / "serve.yaml").read_text()
    assert "OKRSYNC_SERVE_TOKEN" in text and "WEBHOOK_SECRET" in text
    svc = docs["Service"]["spec"]
    assert svc["selector"] == dep["selector"]["matchLabels"]
    assert svc["ports"][0]["targetPort"] == container["ports"][0]["name"]
    ingress = docs["Ingress"]["spec"]["rules"][0]["http"]["paths"]
    assert [p["path"] for p in ingress] == ["/webhooks/"]  # only the webhooks face the trackers
