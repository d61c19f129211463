"""Why a group waits, on the emulated cluster: the operator reads the Job's pods (and, where Kueue
queues it, its Workload) and writes the reason and message into the group's status and the audit's
``Reconciling`` condition — for each state a platform engineer would otherwise dig out by hand."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fluxaudit_operator.config import OperatorConfig
from fluxaudit_operator.jobs import JobOptions
from fluxaudit_operator.kube import Kube
from fluxaudit_operator.policy import Policy
from fluxaudit_operator.reconciler import Reconciler
from fluxaudit_operator.waiting import explain
from tests.support.kube.cluster import EmulatedCluster

NS = "audits"
DOC = {
    "apiVersion": "fluxaudit.dev/v1alpha1",
    "kind": "FluxAudit",
    "metadata": {"name": "w"},
    "spec": {
        "input": {"image": "gs://in/a.png", "mask": "gs://in/m.png"},
        "quants": [{"label": "Q8_0", "file": "f.gguf"}],
        "reference": None,
        "guidanceScales": [2, 30],
        "repeats": 1,
    },
}
JOBS, PODS, WORKLOADS = "batch/v1/jobs", "/v1/pods", "kueue.x-k8s.io/v1beta1/workloads"

UNSCHEDULABLE = {
    "phase": "Pending",
    "conditions": [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        }
    ],
}
IMAGE_PULL = {
    "phase": "Pending",
    "conditions": [{"type": "PodScheduled", "status": "True"}],
    "containerStatuses": [
        {
            "name": "runner",
            "image": "ghcr.io/fluxaudit/runner:0.1.0",
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}},
        }
    ],
}
CRASH_LOOP = {
    "phase": "Running",
    "containerStatuses": [
        {
            "name": "runner",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
        }
    ],
}
RUNNING = {"phase": "Running", "containerStatuses": [{"name": "runner", "state": {"running": {}}}]}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EmulatedCluster]:
    with EmulatedCluster(tmp_path, run_pods=False) as c:
        c.api.declare("kueue.x-k8s.io", "v1beta1", "workloads", "Workload")
        yield c


def _reconciler(cluster: EmulatedCluster, tmp_path: Path) -> Reconciler:
    config = OperatorConfig(
        jobs=JobOptions(storage_root=str(tmp_path / "results")), policy=Policy(input_buckets=("in",))
    )
    return Reconciler(config, Kube(cluster.client()), logging.getLogger("test"))


def _status(cluster: EmulatedCluster, reconciler: Reconciler, doc: dict[str, Any]) -> tuple[dict, dict]:
    """Create the audit, reconcile once (its Job is created), then return (the audit, its Job)."""
    body = client.CustomObjectsApi(cluster.client()).create_namespaced_custom_object(
        "fluxaudit.dev", "v1alpha1", NS, "fluxaudits", copy.deepcopy(doc)
    )
    reconciler.step(NS, "w", "audit")
    (job,) = cluster.api.objects_of(JOBS, NS)
    return body, job


def _pod(cluster: EmulatedCluster, job: dict[str, Any], status: dict[str, Any]) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": job["metadata"]["name"] + "-x1",
            "namespace": NS,
            "labels": job["spec"]["template"]["metadata"]["labels"],
            "ownerReferences": [{"kind": "Job", "name": job["metadata"]["name"], "uid": job["metadata"]["uid"]}],
        },
        "spec": {},
        "status": status,
    }
    cluster.call(cluster.api.put_object(PODS, pod))
    cluster.call(cluster.api.update_status(JOBS, NS, job["metadata"]["name"], {"active": 1}))


def _group_and_condition(cluster: EmulatedCluster, reconciler: Reconciler) -> tuple[dict, dict]:
    reconciler.step(NS, "w", "timer")
    status = Kube(cluster.client()).get_audit(NS, "w")["status"]
    (group,) = status["groups"]
    reconciling = next(c for c in status["conditions"] if c["type"] == "Reconciling")
    return group, reconciling


@pytest.mark.parametrize(
    ("pod_status", "phase", "reason", "says"),
    [
        (UNSCHEDULABLE, "Pending", "Unschedulable", "Insufficient nvidia.com/gpu"),
        (IMAGE_PULL, "Pending", "ImagePullError", "ImagePullBackOff for ghcr.io/fluxaudit/runner:0.1.0"),
        (CRASH_LOOP, "Running", "CrashLoopBackOff", "exit code 137 (OOMKilled)"),
        (RUNNING, "Running", "Running", "0/2 cells done"),
    ],
    ids=["unschedulable", "image-pull", "crash-loop", "running"],
)
def test_each_pod_state_names_its_reason_in_the_status(
    cluster: EmulatedCluster, tmp_path: Path, pod_status: dict, phase: str, reason: str, says: str
) -> None:
    reconciler = _reconciler(cluster, tmp_path)
    _, job = _status(cluster, reconciler, DOC)
    _pod(cluster, job, pod_status)
    group, reconciling = _group_and_condition(cluster, reconciler)
    assert (group["phase"], group["reason"]) == (phase, reason), group
    assert says in group["message"]
    if reason == "Running":
        assert reconciling["reason"] == "GroupsRunning"
    else:
        assert reconciling["reason"] == "GroupsWaiting" and says in reconciling["message"]
    # Pods were read with a list (the verb the chart grants), and nothing else was asked of them.
    assert {s.verb for s in cluster.api.served if s.resource == "pods"} == {"list"}


def test_a_job_queued_by_kueue_says_which_queue_and_why(cluster: EmulatedCluster, tmp_path: Path) -> None:
    doc = copy.deepcopy(DOC)
    doc["spec"]["runner"] = {"queueName": "l4-queue"}
    reconciler = _reconciler(cluster, tmp_path)
    _, job = _status(cluster, reconciler, doc)
    assert job["spec"]["suspend"] is True  # Kueue admits it by unsuspending
    workload = {
        "apiVersion": "kueue.x-k8s.io/v1beta1",
        "kind": "Workload",
        "metadata": {
            "name": "job-" + job["metadata"]["name"],
            "namespace": NS,
            "ownerReferences": [{"kind": "Job", "name": job["metadata"]["name"], "uid": job["metadata"]["uid"]}],
        },
        "status": {
            "conditions": [
                {
                    "type": "QuotaReserved",
                    "status": "False",
                    "reason": "Pending",
                    "message": "couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu",
                }
            ]
        },
    }
    cluster.call(cluster.api.put_object(WORKLOADS, workload))
    group, reconciling = _group_and_condition(cluster, reconciler)
    assert (group["phase"], group["reason"]) == ("Pending", "QueuedByKueue")
    assert "Kueue LocalQueue l4-queue" in group["message"] and "insufficient quota" in group["message"]
    assert reconciling["reason"] == "GroupsWaiting"


def test_without_kueue_installed_a_queued_job_still_says_it_waits_for_admission(
    tmp_path: Path,
) -> None:
    with EmulatedCluster(tmp_path, run_pods=False) as cluster:  # no Workload resource: Kueue absent
        doc = copy.deepcopy(DOC)
        doc["spec"]["runner"] = {"queueName": "l4-queue"}
        reconciler = _reconciler(cluster, tmp_path)
        _status(cluster, reconciler, doc)
        group, _ = _group_and_condition(cluster, reconciler)
    assert group["reason"] == "QueuedByKueue" and "not readable" in group["message"]


def test_explain_ignores_pods_of_other_jobs_and_reads_nothing_when_pods_are_not_readable() -> None:
    job = {"metadata": {"name": "j", "uid": "u-1"}, "spec": {}, "status": {"active": 1}}
    stranger = {
        "metadata": {"name": "p", "ownerReferences": [{"uid": "u-2"}], "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": UNSCHEDULABLE,
    }
    assert explain(job, [stranger]) is None
    assert explain(job, None) is None
    mine = copy.deepcopy(stranger)
    mine["metadata"]["ownerReferences"] = [{"uid": "u-1"}]
    found = explain(job, [stranger, mine])
    assert found is not None and found.reason == "Unschedulable" and found.blocked
