"""The user's path on an emulated cluster: ``kubectl apply`` a FluxAudit (here: the official
client), the real operator process creates one Job per quant, the Job executor runs each
Job's runner command on the tiny model, and the status ends Succeeded with a report.

The API server is kmock's emulator completed in tests/support/kube/apiserver.py; the operator
is ``fluxaudit operator`` in its own process, as in its pod.  Every wait is on a
condition with a timeout.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.helpers import audit_doc
from tests.support.kube.cluster import EmulatedCluster, OperatorProcess, wait_for

pytestmark = pytest.mark.slow
NS = "audits"
GROUP, VERSION, PLURAL = "fluxaudit.dev", "v1alpha1", "fluxaudits"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EmulatedCluster]:
    with EmulatedCluster(tmp_path) as c:
        yield c


def operator_env(cluster: EmulatedCluster, tmp_path: Path) -> dict[str, str]:
    """The operator installed with two shared volumes: results (instead of a bucket) and a
    model cache that already holds the tiny model, as a pre-warmed cache volume would."""
    results = tmp_path / "results"
    cluster.bind_claim("fluxaudit-results", results)
    models = tmp_path / "model-cache"
    cluster.bind_claim("fluxaudit-models", models)
    (models / "huggingface").symlink_to(Path(os.environ["HF_HOME"]))
    return {
        "FLUXAUDIT_STORAGE_ROOT": str(results),
        "FLUXAUDIT_STORAGE_CLAIM": "fluxaudit-results",
        "FLUXAUDIT_MODEL_CACHE_CLAIM": "fluxaudit-models",
    }


class Kubectl:
    """What a user does with kubectl, through the official client."""

    def __init__(self, cluster: EmulatedCluster) -> None:
        api = cluster.client()
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, doc)

    def get(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)

    def jobs(self, audit: str) -> list[Any]:
        return self.batch.list_namespaced_job(NS, label_selector=f"fluxaudit.dev/audit={audit}").items

    def events(self, name: str) -> list[Any]:
        return [e for e in self.core.list_namespaced_event(NS).items if e.involved_object.name == name]


OPERATOR_AGENTS = ("kopf/", "fluxaudit-operator/")
ROOT = Path(__file__).resolve().parents[2]


def granted_to_operator() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples of the operator's ClusterRole in manifests/rbac.yaml."""
    docs = [d for d in yaml.safe_load_all((ROOT / "manifests" / "rbac.yaml").read_text()) if d]
    role = next(d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "fluxaudit-operator")
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def scrape(port: int) -> dict[str, float]:
    """The operator's /metrics as Prometheus reads it: sample name with labels → value."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def finished(kubectl: Kubectl, name: str) -> dict[str, Any] | None:
    status = kubectl.status(name)
    return status if status.get("phase") in ("Succeeded", "Failed") and status.get("reportURL") else None


def test_apply_to_report(tiny_model, cluster: EmulatedCluster, tmp_path: Path) -> None:
    kubectl = Kubectl(cluster)
    doc = audit_doc(tiny_model)
    doc["metadata"] = {"name": "baseline"}
    with OperatorProcess(cluster, operator_env(cluster, tmp_path)) as operator:
        created = kubectl.apply(doc)
        created_at = created["metadata"]["creationTimestamp"]
        jobs = wait_for("3 Jobs", lambda: len(kubectl.jobs("baseline")) == 3 and kubectl.jobs("baseline"), 30)
        status = wait_for("the audit to finish", lambda: finished(kubectl, "baseline"), 240)
        health = urllib.request.urlopen(f"http://127.0.0.1:{operator.liveness_port}/healthz", timeout=5)
        assert health.status == 200
        metrics = scrape(operator.metrics_port)
        logs = [json.loads(line) for line in operator.logs().splitlines() if line.startswith("{")]
        # Deleting the audit lets the garbage collector take its Jobs (owner references);
        # kopf's finalizer (ours by name) is released by the running operator.
        assert kubectl.get("baseline")["metadata"]["finalizers"] == ["fluxaudit.dev/finalizer"]
        # Events are posted after the status write that caused them: wait for them, do not race them.
        events = wait_for(
            "the events",
            lambda: (
                (r := [e.reason for e in kubectl.events("baseline")]).count("JobCreated") == 3
                and "AuditSucceeded" in r
                and r
            ),
            20,
        )
        kubectl.delete("baseline")
        wait_for("Jobs to be collected", lambda: not kubectl.jobs("baseline"), 20)
        with pytest.raises(ApiException) as gone:
            kubectl.get("baseline")
        assert gone.value.status == 404
    assert not cluster.executor.errors, cluster.executor.errors
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    # One Job per quant, each created once and run by exactly one pod.
    assert sorted(j.metadata.name for j in jobs) == ["baseline-q4-0", "baseline-q5-k-s", "baseline-q8-0"]
    assert all(n == 1 for n in cluster.executor.pods_started.values()) and len(cluster.executor.pods_started) == 3
    creates = [s for s in cluster.api.served if s.verb == "create" and s.resource == "jobs"]
    assert len(creates) == 3
    # Least privilege, checked against what the operator really did: every (group, resource,
    # verb) it used is granted by manifests/rbac.yaml, and nothing granted goes unused.
    used = {(s.group, s.resource, s.verb) for s in cluster.api.served if s.agent.startswith(OPERATOR_AGENTS)}
    assert used == granted_to_operator(), (sorted(used), sorted(granted_to_operator()))
    for job in kubectl.jobs("baseline"):
        owner = job.metadata.owner_references[0]
        assert (owner.kind, owner.name, owner.uid, owner.controller) == (
            "FluxAudit",
            "baseline",
            created["metadata"]["uid"],
            True,
        )
    # The status tells the whole story.
    assert status["progress"] == "6/6" and status["observedGeneration"] == 1
    assert [g["phase"] for g in status["groups"]] == ["Succeeded"] * 3
    assert all(g["cellsDone"] == g["cellsTotal"] == 2 and g["startedAt"] for g in status["groups"])
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True" and conditions["Reconciling"]["status"] == "False"
    assert conditions["Stalled"]["status"] == "False"
    assert status["summary"]["recommendedQuant"] in ("Q4_0", "Q5_K_S", "Q8_0")
    report = Path(status["reportPath"])
    assert report.is_file() and status["reportURL"] == (report.parent / "report.html").resolve().as_uri()
    text = report.read_text()
    assert "Q5_K_S" in text and status["summary"]["recommendedQuant"] in text
    assert events.count("JobCreated") == 3 and "AuditSucceeded" in events, events
    # The operator's own lines name the audit they are about (kopf's JSON "object" field).
    created = [entry for entry in logs if entry["message"].startswith("created Job baseline-")]
    assert len(created) == 3 and all(e["object"]["name"] == "baseline" for e in created), created
    assert all(e["object"]["namespace"] == NS for e in created)
    # A runner pod's log (no terminal there) is one JSON record per phase and per cell, with its numbers.
    pod_log = (tmp_path / "pods" / f"{NS}_baseline-q8-0_1.log").read_text()
    records = [json.loads(line) for line in pod_log.splitlines() if line.startswith("{")]
    cells = [r for r in records if r.get("event") == "cell"]
    assert len(cells) == 2 and all(r["group"] == "Q8_0" for r in cells), pod_log[-2000:]
    assert all({"guidance", "seed", "seconds", "step_ms_median", "peak_bytes"} <= r.keys() for r in cells)
    assert {"download.done", "transformer_load.done", "placement.done", "warm_up.done"} <= {
        r.get("event") for r in records
    }
    # Prometheus sees what happened: one audit succeeded, three groups, three Jobs, one report built.
    assert metrics["fluxaudit_audits{phase=Succeeded}"] == 1 and metrics["fluxaudit_audits{phase=Running}"] == 0
    assert metrics["fluxaudit_groups{phase=Succeeded}{reason=}"] == 3
    assert metrics["fluxaudit_jobs_created_total"] == 3
    assert metrics["fluxaudit_report_build_seconds_count"] == 1
    # The audit's own wall clock, creation to report: in the status and as a histogram.
    assert 0 < status["auditSeconds"] < 240 and status["reportWrittenAt"] >= created_at
    assert metrics["fluxaudit_audit_seconds_count"] == 1
    assert metrics["fluxaudit_reconcile_seconds_count{trigger=audit}"] >= 1
    assert all(pod.process.returncode is not None for pod in cluster.executor.pods.values())


def test_many_inputs_run_as_one_job_per_quant_to_a_report_keyed_by_input(
    tiny_model, cluster: EmulatedCluster, tmp_path: Path
) -> None:
    from tests.runner.test_multi_input import multi_doc

    kubectl = Kubectl(cluster)
    doc = multi_doc(tiny_model, tmp_path / "inputs", seeds=[0])
    doc["metadata"] = {"name": "many"}
    with OperatorProcess(cluster, operator_env(cluster, tmp_path)):
        kubectl.apply(doc)
        status = wait_for("the audit to finish", lambda: finished(kubectl, "many"), 240)
    assert not cluster.executor.errors, cluster.executor.errors
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    # Still one Job per quant (Q4_0 and the reference Q8_0), each running all of its inputs' cells.
    assert len(cluster.executor.pods_started) == 2 and all(n == 1 for n in cluster.executor.pods_started.values())
    assert status["progress"] == "12/12"
    assert all(g["cellsDone"] == g["cellsTotal"] == 3 * 2 for g in status["groups"])
    run = Path(status["reportPath"]).parent
    report = json.loads((run / "report.json").read_text())
    assert {c["input"] for c in report["cells"]} == {"original", "mirrored", "wide"}
    for name in ("original", "mirrored", "wide"):
        assert (run / name / "contact_sheet.png").is_file() and (run / name / "inputs" / "mask.png").is_file()
        assert sorted(p.name for p in (run / name).glob("*_gs*.png")) == [
            f"{q}_gs{g}.png" for q in ("Q4_0", "Q8_0") for g in (2, 30)
        ]


def test_an_invalid_spec_is_stalled_with_the_field_path(cluster: EmulatedCluster, tmp_path: Path) -> None:
    kubectl = Kubectl(cluster)
    doc = {
        "apiVersion": "fluxaudit.dev/v1alpha1",
        "kind": "FluxAudit",
        "metadata": {"name": "typo"},
        # Valid for the CRD's schema, not for the model: the reference must be one of the quants.
        "spec": {"input": {"userId": "u", "sessionId": "s"}, "reference": "Q9", "storage": {"bucket": "b-1"}},
    }
    with OperatorProcess(cluster, {}):
        kubectl.apply(doc)
        status = wait_for(
            "Stalled", lambda: kubectl.status("typo").get("phase") == "Failed" and kubectl.status("typo"), 30
        )
        events = wait_for(
            "an InvalidSpec event", lambda: [e for e in kubectl.events("typo") if e.reason == "InvalidSpec"], 20
        )
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "InvalidSpec"
    assert "reference 'Q9' is not one of the quants" in stalled["message"]
    assert not kubectl.jobs("typo")
    assert any(e.reason == "InvalidSpec" and "reference 'Q9'" in e.message for e in events)


def test_also_runs_as_kopf_run(tmp_path: Path) -> None:
    """``kopf run -m fluxaudit_operator.handlers`` is the same operator (settings from its startup handler)."""
    import subprocess
    import sys

    with EmulatedCluster(tmp_path, run_pods=False) as cluster:
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "FLUXAUDIT_STORAGE_ROOT": str(tmp_path / "r")}
        command = [sys.executable, "-m", "kopf", "run", "--standalone", "-A", "-m", "fluxaudit_operator.handlers"]
        with (tmp_path / "kopf.log").open("wb") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            kubectl = Kubectl(cluster)
            doc = {
                "apiVersion": "fluxaudit.dev/v1alpha1",
                "kind": "FluxAudit",
                "metadata": {"name": "kopf-run"},
                "spec": {"input": {"userId": "u", "sessionId": "s"}},
            }
            kubectl.apply(doc)
            # The defaults: three quants and the bf16 reference, four Jobs; the GPU Jobs plan 3 timed runs per
            # cell (repeats unset), the reference one: 3 × 5 × 3 + 5 = 50 cells.
            wait_for("4 Jobs", lambda: len(kubectl.jobs("kopf-run")) == 4, 60)
            wait_for("the status", lambda: kubectl.status("kopf-run").get("progress") == "0/50", 30)
            assert kubectl.get("kopf-run")["metadata"]["finalizers"] == ["fluxaudit.dev/finalizer"]
        finally:
            process.terminate()
            process.wait(20)
