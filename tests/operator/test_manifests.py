"""manifests/: `kubectl kustomize` renders offline, every object validates strictly, and the
operator's pod is locked down (non-root, read-only root, no capabilities)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
VERSIONS = ["1.29", kubernetes_validate.utils.latest_version()]


def listed_objects() -> list[dict[str, Any]]:
    """The kustomization's resources, read directly (what kustomize renders, minus ordering)."""
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    out: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        out += [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]
    return out


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_renders_every_listed_object() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    objects = [d for d in yaml.safe_load_all(rendered) if d]
    assert sorted(map(_key, objects)) == sorted(map(_key, listed_objects()))
    assert {o["kind"] for o in objects} == {
        "CustomResourceDefinition",
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_validates_strictly(version: str) -> None:
    examples = [d for p in (MANIFESTS / "examples").glob("*.yaml") for d in yaml.safe_load_all(p.read_text()) if d]
    for obj in listed_objects() + [e for e in examples if e["kind"] != "FluxAudit"]:
        kubernetes_validate.validate(obj, version, strict=True)


def test_operator_pod_is_locked_down() -> None:
    deployment = next(o for o in listed_objects() if o["kind"] == "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"]["memory"]
    # Writable only where it must be: /tmp, an emptyDir.
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp"]
    # No credential in the manifest itself: only references to Secrets.
    text = (MANIFESTS / "deployment.yaml").read_text()
    assert "BEGIN PRIVATE KEY" not in text and "hf_" not in text.replace("fluxaudit-hf-token", "")


def test_rbac_has_no_wildcards_and_binds_the_operator() -> None:
    objects = listed_objects()
    role = next(o for o in objects if o["kind"] == "ClusterRole")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"])
    assert not any(r for r in role["rules"] if "secrets" in r["resources"])  # pods read Secrets, not the operator
    binding = next(o for o in objects if o["kind"] == "ClusterRoleBinding")
    account = next(o for o in objects if o["kind"] == "ServiceAccount")
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": account["metadata"]["namespace"]}
    ]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
