"""spec → Job manifests: every field the operator issue lists, validated against the
Kubernetes OpenAPI schemas (strict) for the oldest supported and the newest version."""

from __future__ import annotations

import copy
import json
from typing import Any

import kubernetes_validate
import pytest

from fluxaudit.spec import load_file, parse_document
from fluxaudit_operator.jobs import build_job, dns_label, job_name
from tests.support.helpers import jobs_for, pinned

DOC: dict[str, Any] = {
    "apiVersion": "fluxaudit.dev/v1alpha1",
    "kind": "FluxAudit",
    "metadata": {"name": "baseline"},
    "spec": {"input": {"userId": "u1", "sessionId": "D1A406F5"}},
}
UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def jobs(**spec: Any) -> list[dict[str, Any]]:
    doc = copy.deepcopy(DOC)
    doc["spec"].update(spec)
    return jobs_for(parse_document(doc), namespace="audits", uid=UID, run_id="baseline-1")


@pytest.mark.parametrize("version", ["1.29", kubernetes_validate.utils.latest_version()])
@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"reference": "bf16", "runner": {"queueName": "gpu", "priorityClassName": "batch-low"}},
        {
            "runner": {
                "nodeSelector": {"pool": "h100"},
                "tolerations": [
                    {
                        "key": "spot",
                        "operator": "Equal",
                        "value": "true",
                        "effect": "NoSchedule",
                        "tolerationSeconds": 30,
                    }
                ],
            }
        },
    ],
)
def test_every_job_validates_strictly(version: str, spec: dict[str, Any]) -> None:
    for job in jobs(**spec):
        kubernetes_validate.validate(job, version, strict=True)


def test_job_fields() -> None:
    q4, q5, q8, bf16 = jobs()  # the default reference is the base repo's bf16 transformer: a group of its own
    assert [j["metadata"]["name"] for j in (q4, q5, q8, bf16)] == [
        "baseline-q4-0",
        "baseline-q5-k-s",
        "baseline-q8-0",
        "baseline-bf16",
    ]
    meta = q5["metadata"]
    assert meta["namespace"] == "audits" and meta["annotations"]["fluxaudit.dev/quant-label"] == "Q5_K_S"
    assert (
        meta["labels"]["fluxaudit.dev/audit"] == "baseline" and meta["labels"]["fluxaudit.dev/run-id"] == "baseline-1"
    )
    (owner,) = meta["ownerReferences"]
    assert owner == {
        "apiVersion": "fluxaudit.dev/v1alpha1", "kind": "FluxAudit", "name": "baseline", "uid": UID,
        "controller": True, "blockOwnerDeletion": True,
    }  # fmt: skip
    spec = q5["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (3, 14400, 86400)
    ignore, fail = spec["podFailurePolicy"]["rules"]
    assert ignore == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert fail["action"] == "FailJob" and fail["onExitCodes"]["values"] == [2, 3]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"] is True
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    (c,) = pod["containers"]
    assert c["command"] == ["fluxaudit", "run", "env:FLUXAUDIT_SPEC", "--quant", "Q5_K_S"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }  # fmt: skip
    env = {e["name"]: e for e in c["env"]}
    # Credentials as files from a Secret volume, read-only, readable by the runner's group alone: never an
    # environment variable (inherited by child processes, readable in /proc/<pid>/environ).
    assert "HF_TOKEN" not in env and env["HF_TOKEN_PATH"]["value"] == "/var/run/secrets/fluxaudit/hf-token/token"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["hf-token"]["secret"] == {
        "secretName": "fluxaudit-hf-token", "items": [{"key": "token", "path": "token"}], "defaultMode": 0o440,
        "optional": True,
    }  # fmt: skip
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["hf-token"] == {
        "name": "hf-token",
        "mountPath": "/var/run/secrets/fluxaudit/hf-token",
        "readOnly": True,
    }


def test_runner_pods_are_locked_down() -> None:
    """Non-root as UID 10001, RuntimeDefault seccomp, no API token: each asserted here (RELIABILITY.md
    records the mutation that makes this test fail when one is removed)."""
    for job in jobs():
        pod = job["spec"]["template"]["spec"]
        assert pod["securityContext"] == {
            "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        }  # fmt: skip
        assert pod["automountServiceAccountToken"] is False
        (c,) = pod["containers"]
        assert c["securityContext"]["runAsNonRoot"] is True and c["securityContext"]["capabilities"] == {
            "drop": ["ALL"]
        }
        assert not any(e["name"] in ("HF_TOKEN", "FIREBASE_CREDENTIALS") for e in c["env"])


def test_the_pod_reads_back_the_same_audit(monkeypatch: pytest.MonkeyPatch) -> None:
    (job, *_) = jobs(guidanceScales=[2, 30], steps=12)
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    monkeypatch.setenv("FLUXAUDIT_SPEC", env["FLUXAUDIT_SPEC"])
    audit = load_file("env:FLUXAUDIT_SPEC")
    assert audit.run_id() == "baseline-1"  # pinned: every pod writes to the same run folder
    assert audit.spec.guidance_scales == (2, 30) and audit.spec.steps == 12
    stored = json.loads(env["FLUXAUDIT_SPEC"])["spec"]["input"]
    assert (stored["userId"], stored["sessionId"]) == ("u1", "D1A406F5")


def test_reference_group_and_queue() -> None:
    all_jobs = jobs(reference="bf16", runner={"queueName": "gpu-queue"})
    assert [j["metadata"]["name"] for j in all_jobs][-1] == "baseline-bf16"
    for j in all_jobs:
        assert j["spec"]["suspend"] is True and j["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"


def test_names_are_dns_labels_and_stable() -> None:
    assert dns_label("Q5_K_S") == "q5-k-s" and dns_label("__") == "x"
    long = job_name("a" * 40, "Q" * 40)
    assert len(long) <= 63 and long == job_name("a" * 40, "Q" * 40) and long != job_name("a" * 40, "R" * 40)
    audit = parse_document(DOC)
    assert build_job(pinned(audit, "r"), "Q8_0", namespace="n", uid=UID) == build_job(
        pinned(audit, "r"), "Q8_0", namespace="n", uid=UID
    )


@pytest.mark.parametrize("version", ["1.29", kubernetes_validate.utils.latest_version()])
def test_installation_options_render_valid_jobs(version: str) -> None:
    from fluxaudit_operator.jobs import JobOptions

    options = JobOptions(
        service_account="runner-wi",
        hf_token_secret=None,
        firebase_secret="fb-key",
        storage_root="/results",
        storage_claim="results-rwx",
        model_cache_claim="hf-cache",
    )
    job = build_job(
        pinned(parse_document(copy.deepcopy(DOC)), "r"), "Q8_0", namespace="audits", uid=UID, options=options
    )
    kubernetes_validate.validate(job, version, strict=True)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert "HF_TOKEN_PATH" not in env and "FIREBASE_CREDENTIALS" not in env
    assert env["FIREBASE_CREDENTIALS_FILE"]["value"] == "/var/run/secrets/fluxaudit/firebase/credentials"
    assert env["FLUXAUDIT_STORAGE_ROOT"]["value"] == "/results"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["results"]["persistentVolumeClaim"]["claimName"] == "results-rwx"
    assert volumes["cache"]["persistentVolumeClaim"]["claimName"] == "hf-cache"
    assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]} == {
        "cache": "/cache",
        "tmp": "/tmp",
        "firebase": "/var/run/secrets/fluxaudit/firebase",
        "results": "/results",
    }
    assert (
        volumes["firebase"]["secret"]["secretName"] == "fb-key" and volumes["firebase"]["secret"]["optional"] is False
    )
    assert pod["serviceAccountName"] == "runner-wi" and pod["automountServiceAccountToken"] is False
    # No credential value in the manifest: only references to Secrets.
    assert all("value" not in e or e["name"] not in ("HF_TOKEN", "FIREBASE_CREDENTIALS") for e in container["env"])
