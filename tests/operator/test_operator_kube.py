"""The operator's API adapter against the emulated API server: adoption on a name
conflict, a Job of an older audit with the same name, status writes that never touch
the spec — and the emulator's own fidelity on what the operator relies on."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fluxaudit.spec import parse_document
from fluxaudit_operator.jobs import build_job
from fluxaudit_operator.kube import ForeignJob, Kube
from tests.support.helpers import pinned
from tests.support.kube.cluster import EmulatedCluster

NS = "audits"
DOC = {
    "apiVersion": "fluxaudit.dev/v1alpha1",
    "kind": "FluxAudit",
    "metadata": {"name": "a"},
    "spec": {"input": {"userId": "u", "sessionId": "s"}, "storage": {"bucket": "b-1"}},
}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EmulatedCluster]:
    with EmulatedCluster(tmp_path, run_pods=False) as c:
        yield c


def _created(cluster: EmulatedCluster) -> dict:
    return client.CustomObjectsApi(cluster.client()).create_namespaced_custom_object(
        "fluxaudit.dev", "v1alpha1", NS, "fluxaudits", copy.deepcopy(DOC)
    )


def test_create_then_adopt_never_duplicates(cluster: EmulatedCluster) -> None:
    kube = Kube(cluster.client())
    body = _created(cluster)
    job = build_job(pinned(parse_document(DOC), "r"), "Q8_0", namespace=NS, uid=body["metadata"]["uid"])
    assert kube.create_job(job) is True
    assert kube.create_job(job) is False  # 409 → the same Job, adopted
    jobs = kube.list_jobs(NS, "a", body["metadata"]["uid"])
    assert [j["metadata"]["name"] for j in jobs] == ["a-q8-0"]
    assert kube.list_jobs(NS, "a", "another-uid") == []  # owned by uid, not just labelled


def test_a_job_left_by_an_older_audit_is_not_adopted(cluster: EmulatedCluster) -> None:
    kube = Kube(cluster.client())
    job = build_job(pinned(parse_document(DOC), "r"), "Q8_0", namespace=NS, uid="old-uid")
    assert kube.create_job(job)
    newer = build_job(pinned(parse_document(DOC), "r"), "Q8_0", namespace=NS, uid="new-uid")
    with pytest.raises(ForeignJob, match="earlier FluxAudit"):
        kube.create_job(newer)


def test_status_patch_touches_status_only(cluster: EmulatedCluster) -> None:
    kube = Kube(cluster.client())
    body = _created(cluster)
    kube.patch_status(NS, "a", {"phase": "Running", "spec": "ignored"})
    now = kube.get_audit(NS, "a")
    assert now["status"] == {"phase": "Running", "spec": "ignored"}
    assert now["spec"] == body["spec"] and now["metadata"]["generation"] == 1
    assert int(now["metadata"]["resourceVersion"]) > int(body["metadata"]["resourceVersion"])
    assert kube.get_audit(NS, "missing") is None


def _widgets(cluster: EmulatedCluster) -> tuple[client.CustomObjectsApi, dict]:
    """A schemaless custom resource (FluxAudit's spec is immutable, so generations need another)."""
    cluster.api.declare("example.dev", "v1", "widgets", "Widget")
    custom = client.CustomObjectsApi(cluster.client())
    body = {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}
    return custom, custom.create_namespaced_custom_object("example.dev", "v1", NS, "widgets", body)


W = ("example.dev", "v1", NS, "widgets")


def test_emulator_keeps_spec_and_status_apart_and_counts_generations(cluster: EmulatedCluster) -> None:
    custom, body = _widgets(cluster)
    assert body["metadata"]["uid"] and body["metadata"]["creationTimestamp"] and body["metadata"]["generation"] == 1
    patched = custom.patch_namespaced_custom_object(*W, "w", {"spec": {"size": 4}, "status": {"phase": "x"}})
    assert patched["metadata"]["generation"] == 2 and "status" not in patched
    labelled = custom.patch_namespaced_custom_object(*W, "w", {"metadata": {"labels": {"team": "ml"}}})
    assert labelled["metadata"]["generation"] == 2  # metadata edits do not bump the generation
    listed = custom.list_namespaced_custom_object(*W, label_selector="team=ml")
    assert [o["metadata"]["name"] for o in listed["items"]] == ["w"]
    assert custom.list_namespaced_custom_object(*W, label_selector="team in (infra)")["items"] == []
    with pytest.raises(ApiException) as conflict:
        custom.create_namespaced_custom_object(
            *W, {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}}
        )
    assert conflict.value.status == 409


def test_emulator_watch_resumes_from_a_resource_version(cluster: EmulatedCluster) -> None:
    from kubernetes import watch

    custom, body = _widgets(cluster)
    rv = body["metadata"]["resourceVersion"]
    custom.patch_namespaced_custom_object(*W, "w", {"spec": {"size": 3}})
    custom.delete_namespaced_custom_object(*W, "w")
    seen = [
        (e["type"], e["object"]["metadata"]["name"])
        for e in watch.Watch().stream(custom.list_namespaced_custom_object, *W, resource_version=rv, timeout_seconds=1)
    ]
    assert seen == [("MODIFIED", "w"), ("DELETED", "w")]


def test_emulator_validates_like_the_api_server(cluster: EmulatedCluster) -> None:
    custom = client.CustomObjectsApi(cluster.client())
    bad = copy.deepcopy(DOC)
    bad["metadata"]["name"] = "bad"
    bad["spec"]["guidanceScales"] = [2, 400]
    with pytest.raises(ApiException) as invalid:
        custom.create_namespaced_custom_object("fluxaudit.dev", "v1alpha1", NS, "fluxaudits", bad)
    assert invalid.value.status == 422 and "spec.guidanceScales[1]" in invalid.value.body
    typo = copy.deepcopy(DOC)
    typo["spec"]["stepz"] = 4
    with pytest.raises(ApiException) as strict:
        custom.create_namespaced_custom_object(
            "fluxaudit.dev", "v1alpha1", NS, "fluxaudits", typo, field_validation="Strict"
        )
    assert strict.value.status == 400 and 'unknown field \\"spec.stepz\\"' in strict.value.body
    pruned = custom.create_namespaced_custom_object("fluxaudit.dev", "v1alpha1", NS, "fluxaudits", typo)
    assert "stepz" not in pruned["spec"]  # without Strict, the API server drops it silently
    with pytest.raises(ApiException) as immutable:
        custom.patch_namespaced_custom_object(
            "fluxaudit.dev", "v1alpha1", NS, "fluxaudits", "a", {"spec": {"steps": 4}}
        )
    assert immutable.value.status == 422 and "spec is immutable" in immutable.value.body
