"""The Helm chart: lint and render with the default and CI values files, every object strictly
valid for Kubernetes 1.29 and the newest schemas, least-privilege RBAC in both scopes, the
installation defaults accepted by the operator itself, bad values rejected by the schema,
and the plain manifests equal to the default render."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from fluxaudit_operator.config import OperatorConfig

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "fluxaudit"
VALUES_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
VERSIONS = ["1.29", kubernetes_validate.utils.latest_version()]
sys.path.insert(0, str(ROOT / "tools"))
from fetch_helm import fetch  # noqa: E402


@pytest.fixture(scope="module")
def helm() -> str:
    return str(fetch())


def render(helm: str, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [helm, "template", "fluxaudit", str(CHART), "-n", "fluxaudit-system", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
    }


def operator_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    (deployment,) = find(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


VALUE_SETS = [[]] + [["-f", str(p)] for p in VALUES_FILES]
IDS = ["defaults"] + [p.stem for p in VALUES_FILES]


@pytest.mark.parametrize("args", VALUE_SETS, ids=IDS)
def test_lint(helm: str, args: list[str]) -> None:
    result = subprocess.run([helm, "lint", "--strict", str(CHART), *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("args", VALUE_SETS, ids=IDS)
def test_every_rendered_object_validates_strictly(helm: str, args: list[str], version: str) -> None:
    objects = render(helm, *args)
    assert find(objects, "Deployment") and find(objects, "CustomResourceDefinition")
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("args", VALUE_SETS, ids=IDS)
def test_the_operator_accepts_the_rendered_settings(helm: str, args: list[str]) -> None:
    """The env the chart renders is parsed by the operator's own settings code (a typo fails here)."""
    env = operator_env(render(helm, *args))
    config = OperatorConfig.from_env(env)
    assert config.spec_defaults["runner"]["image"].startswith(("ghcr.io/fluxaudit/runner:", "registry.example.com/"))


def test_rbac_is_the_verified_minimum_in_both_scopes(helm: str) -> None:
    # manifests/rbac.yaml is what the end-to-end test compares with every request the operator made.
    verified = next(
        d
        for d in yaml.safe_load_all((ROOT / "manifests" / "rbac.yaml").read_text())
        if d and d["kind"] == "ClusterRole"
    )
    cluster = render(helm)
    (cluster_role,) = find(cluster, "ClusterRole")
    assert rules(cluster_role) == rules(verified)
    assert not find(cluster, "Role")
    single = render(helm, "--set", "watchNamespaces={audits,research}")
    assert not find(single, "ClusterRole") and not find(single, "ClusterRoleBinding")
    roles = find(single, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["audits", "research"]
    assert all(rules(r) == rules(verified) for r in roles)
    for binding in find(single, "RoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "fluxaudit-operator", "namespace": "fluxaudit-system"}
        ]
    assert operator_env(single)["FLUXAUDIT_NAMESPACES"] == "audits,research"
    # The runner's ServiceAccount goes where audits run, without an API token.
    runners = [s for s in find(single, "ServiceAccount") if s["metadata"]["name"] == "fluxaudit-runner"]
    assert sorted(s["metadata"]["namespace"] for s in runners) == ["audits", "research"]
    assert all(s["automountServiceAccountToken"] is False for s in runners)


def test_custom_pool_values_reach_every_fluxaudit(helm: str) -> None:
    objects = render(helm, "-f", str(CHART / "ci" / "custom-pool-values.yaml"))
    env = operator_env(objects)
    defaults = json.loads(env["FLUXAUDIT_SPEC_DEFAULTS"])
    assert defaults["runner"]["nodeSelector"]["cloud.google.com/gke-accelerator"] == "nvidia-h100-80gb"
    assert defaults["runner"]["image"] == "registry.example.com/fluxaudit/runner:0.1.0-rc1"
    assert (env["FLUXAUDIT_STORAGE_CLAIM"], env["FLUXAUDIT_STORAGE_ROOT"]) == ("fluxaudit-results", "/results")
    assert env["FLUXAUDIT_MODEL_CACHE_CLAIM"] == "hf-cache" and env["FLUXAUDIT_FIREBASE_SECRET"] == "fluxaudit-firebase"
    (deployment,) = find(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert {v["name"]: v for v in pod["volumes"]}["results"]["persistentVolumeClaim"][
        "claimName"
    ] == "fluxaudit-results"
    key = next(e for e in pod["containers"][0]["env"] if e["name"] == "FIREBASE_CREDENTIALS")
    assert key["valueFrom"]["secretKeyRef"] == {"name": "fluxaudit-operator-key", "key": "credentials"}


def test_operator_pod_is_locked_down_for_every_values_file(helm: str) -> None:
    for args in VALUE_SETS:
        (deployment,) = find(render(helm, *args), "Deployment")
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        sc = container["securityContext"]
        assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
        assert (
            pod["securityContext"]["runAsNonRoot"]
            and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        )
        assert (
            sc["readOnlyRootFilesystem"]
            and not sc["allowPrivilegeEscalation"]
            and sc["capabilities"]["drop"] == ["ALL"]
        )
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ("watchNamespaces: [Team_A]", "/watchNamespaces/0"),
        ("operator: {reconcileSeconds: 0}", "/operator/reconcileSeconds"),
        ("operator: {logFormat: xml}", "/operator/logFormat"),
        ("runner: {resources: {limits: {memory: lots}}}", "/runner/resources/limits/memory"),
        ("runner: {tolerations: [{key: a, operator: Sometimes}]}", "/runner/tolerations/0/operator"),
        ("storage: {bucket: Not_A_Bucket}", "/storage/bucket"),
        ("storage: {sharedVolume: {claim: results, root: relative}}", "/storage/sharedVolume/root"),
        ("crds: {install: yes-please, keep: true}", "/crds/install"),
        ("runnner: {}", "runnner"),
    ],
)
def test_bad_values_fail_at_install_time_naming_the_field(helm: str, tmp_path: Path, values: str, field: str) -> None:
    bad = tmp_path / "bad-values.yaml"
    bad.write_text(values + "\n")
    result = subprocess.run(
        [helm, "template", "x", str(CHART), "-f", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "schema" in result.stderr and field in result.stderr, result.stderr


def test_crd_is_the_generated_one_and_can_be_skipped_or_kept(helm: str) -> None:
    assert (CHART / "files" / "crd.yaml").read_text() == (ROOT / "manifests" / "crd.yaml").read_text(), (
        "charts/fluxaudit/files/crd.yaml is stale: cp manifests/crd.yaml charts/fluxaudit/files/crd.yaml"
    )
    (crd,) = find(render(helm), "CustomResourceDefinition")
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert not find(render(helm, "--set", "crds.install=false"), "CustomResourceDefinition")
    (unkept,) = find(render(helm, "--set", "crds.keep=false"), "CustomResourceDefinition")
    assert "annotations" not in unkept["metadata"]


def _strip(obj: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(obj))
    if out["kind"] == "CustomResourceDefinition":  # the chart adds its labels and the keep policy
        out["metadata"].pop("labels", None)
        out["metadata"].pop("annotations", None)
    return out


def test_plain_manifests_equal_the_default_render(helm: str) -> None:
    from tests.operator.test_manifests import listed_objects

    manifests = [_strip(o) for o in listed_objects() if o["kind"] != "Namespace"]
    chart = [_strip(o) for o in render(helm)]

    def key(o: dict[str, Any]) -> tuple[str, str]:
        return (o["kind"], o["metadata"]["name"])

    assert sorted(manifests, key=key) == sorted(chart, key=key), "run: python tools/render_manifests.py"


def test_every_value_is_documented_in_the_chart_readme() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()

    maps = {"nodeSelector", "resources", "annotations", "podAnnotations", "affinity"}  # values that are maps

    def leaves(node: Any, prefix: str) -> list[str]:
        if isinstance(node, dict) and prefix.rsplit(".", 1)[-1] not in maps:
            return [p for k, v in node.items() for p in leaves(v, f"{prefix}.{k}" if prefix else k)]
        return [prefix]

    missing = [name for name in leaves(values, "") if f"`{name}`" not in readme]
    assert not missing, missing


def test_notes_tell_the_next_steps(helm: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            helm,
            "install",
            "fluxaudit",
            str(CHART),
            "-n",
            "fluxaudit-system",
            "--dry-run=client",
            "--set",
            "watchNamespaces={audits}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"KUBECONFIG": str(tmp_path / "none"), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "watches\nthe namespaces audits" in notes and "(created here in audits)" in notes
    assert (
        "create secret generic fluxaudit-hf-token" in notes and "every FluxAudit must name spec.storage.bucket" in notes
    )


def test_two_replicas_share_a_peering_object_in_either_scope(helm: str) -> None:
    one = render(helm)
    assert not [o for o in one if o["kind"] in ("ClusterKopfPeering", "KopfPeering")]
    (deployment,) = find(one, "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    assert "FLUXAUDIT_PEERING" not in operator_env(one)
    two = render(helm, "--set", "operator.replicas=2")
    (deployment,) = find(two, "Deployment")
    assert deployment["spec"]["replicas"] == 2 and operator_env(two)["FLUXAUDIT_PEERING"] == "fluxaudit"
    (peering,) = find(two, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "fluxaudit"
    role = next(r for r in find(two, "ClusterRole") if r["metadata"]["name"] == "fluxaudit-operator-peering")
    assert role["rules"] == [
        {"apiGroups": ["kopf.dev"], "resources": ["clusterkopfpeerings"], "verbs": ["list", "watch", "patch"]}
    ]
    scoped = render(helm, "--set", "operator.replicas=2", "--set", "watchNamespaces={audits}")
    assert [p["metadata"]["namespace"] for p in find(scoped, "KopfPeering")] == ["audits"]
    assert any(r["metadata"]["name"] == "fluxaudit-operator-peering" for r in find(scoped, "Role"))
    assert not [r for r in find(scoped, "ClusterRole")]


def test_metrics_port_and_monitors_render_for_prometheus_and_managed_prometheus(helm: str) -> None:
    default = render(helm)
    (container,) = find(default, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 9090} in container["ports"]
    assert OperatorConfig.from_env(operator_env(default)).metrics_port == 9090
    assert not find(default, "ServiceMonitor") and not find(default, "PodMonitoring")
    on = render(
        helm,
        "--set", "metrics.serviceMonitor.enabled=true",
        "--set", "metrics.serviceMonitor.labels.release=kube-prometheus",
        "--set", "metrics.podMonitor.enabled=true",
        "--set", "metrics.podMonitoring.enabled=true",
    )  # fmt: skip
    (service,) = [s for s in find(on, "Service") if s["metadata"]["name"] == "fluxaudit-operator-metrics"]
    (monitor,) = find(on, "ServiceMonitor")
    (pod_monitor,) = find(on, "PodMonitor")
    (managed,) = find(on, "PodMonitoring")
    labels = find(on, "Deployment")[0]["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == labels and service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"] == labels and monitor["metadata"]["labels"]["release"] == (
        "kube-prometheus"
    )
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert (
        managed["apiVersion"] == "monitoring.googleapis.com/v1" and managed["spec"]["selector"]["matchLabels"] == labels
    )
    off = render(helm, "--set", "metrics.enabled=false")
    (container,) = find(off, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert [p["name"] for p in container["ports"]] == ["health"] and "FLUXAUDIT_METRICS_PORT" not in operator_env(off)


def test_kueue_defaults_reach_every_audit_and_workloads_are_readable_only_with_kueue(helm: str) -> None:
    objects = render(helm, "--set", "runner.queueName=l4-queue", "--set", "runner.priorityClassName=audits-low")
    config = OperatorConfig.from_env(operator_env(objects))
    assert config.spec_defaults["runner"]["queueName"] == "l4-queue"
    assert config.spec_defaults["runner"]["priorityClassName"] == "audits-low"
    (role,) = find(objects, "ClusterRole")
    assert ("kueue.x-k8s.io", "workloads", "list") not in rules(role)
    assert ("", "pods", "list") in rules(role)
    (role,) = find(render(helm, "--set", "kueue.enabled=true"), "ClusterRole")
    assert ("kueue.x-k8s.io", "workloads", "list") in rules(role)
