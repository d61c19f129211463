"""FluxAudit → one batch/v1 Job per group (pure: no API calls, no clock).

The Job runs the same CLI a user runs locally (``fluxaudit run env:FLUXAUDIT_SPEC
--quant LABEL``), so the Kubernetes and local modes share one code path.  Names are
deterministic (``{audit}-{quant}``): a create that meets an existing Job adopts it
instead of duplicating work.  The audit given here has its run id pinned
(``planning.read_resource``): every Job of one audit writes to the same run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from fluxaudit.contract import (
    ANNOTATION_QUANT_LABEL,
    API_VERSION,
    KIND,
    LABEL_AUDIT,
    LABEL_KUEUE_QUEUE,
    LABEL_QUANT,
    LABEL_RUN,
    PERMANENT_EXIT_CODES,
    Env,
    audit_document,
)
from fluxaudit.spec import FluxAudit, dns_label

CONTAINER = "runner"
RUNNER_UID = 10001
MAX_NAME = 63
#: where the runner image's volumes are mounted.
CACHE_DIR = "/cache"
SECRETS_DIR = "/var/run/secrets/fluxaudit"


def job_name(audit_name: str, label: str) -> str:
    """``{audit}-{quant}``, shortened with a hash suffix when over 63 characters."""
    name = f"{audit_name}-{dns_label(label)}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9].rstrip('-')}-{digest}"


def labels(audit: FluxAudit, label: str, run_id: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "fluxaudit",
        "app.kubernetes.io/component": "runner",
        "app.kubernetes.io/managed-by": "fluxaudit-operator",
        LABEL_AUDIT: audit.metadata.name,
        LABEL_QUANT: dns_label(label),
        LABEL_RUN: run_id,
    }


def spec_document(audit: FluxAudit) -> str:
    """The document the runner reads: the accepted spec, its run id pinned."""
    return json.dumps(audit_document(audit, audit.run_id()), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class JobOptions:
    """What the operator's installation decides for every runner Job (not the FluxAudit's author)."""

    service_account: str = "fluxaudit-runner"
    #: Secret with key ``token``: the gated black-forest-labs repos need it; optional so public mirrors work.
    hf_token_secret: str | None = "fluxaudit-hf-token"
    #: Secret with key ``credentials`` (base64 service-account JSON); unset = Workload Identity.
    firebase_secret: str | None = None
    #: A shared filesystem instead of a bucket: mounted at ``storage_root`` from this ReadWriteMany claim.
    storage_root: str | None = None
    storage_claim: str | None = None
    #: A claim holding the Hugging Face cache (``/cache``): models download once per cluster, not per pod.
    model_cache_claim: str | None = None


def build_job(
    audit: FluxAudit, label: str, *, namespace: str, uid: str, options: JobOptions | None = None
) -> dict[str, Any]:
    spec = audit.spec
    run_id = audit.run_id()
    options = options or JobOptions()
    service_account = options.service_account
    hf_token_secret = options.hf_token_secret
    firebase_secret = options.firebase_secret
    runner = spec.runner
    meta_labels = labels(audit, label, run_id)
    env: list[dict[str, Any]] = [
        {"name": Env.SPEC, "value": spec_document(audit)},
        {"name": Env.NODE_NAME, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": Env.HF_HOME, "value": f"{CACHE_DIR}/huggingface"},
        # Inductor/Triton kernels compiled by the fast path: with a model-cache claim, later pods reuse them.
        {"name": Env.COMPILE_CACHE, "value": f"{CACHE_DIR}/torch-compile"},
        {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "cache", "persistentVolumeClaim": {"claimName": options.model_cache_claim}}
        if options.model_cache_claim
        else {"name": "cache", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
    ]
    mounts: list[dict[str, Any]] = [{"name": "cache", "mountPath": CACHE_DIR}, {"name": "tmp", "mountPath": "/tmp"}]
    # Credentials as files the runner's group alone may read, never environment variables: those are
    # inherited by every child process and readable in /proc/<pid>/environ.
    for name, secret, key, variable, optional in (
        ("hf-token", hf_token_secret, "token", Env.HF_TOKEN_PATH, True),
        ("firebase", firebase_secret, "credentials", Env.FIREBASE_CREDENTIALS_FILE, False),
    ):
        if secret:
            folder = f"{SECRETS_DIR}/{name}"
            volumes.append(
                {
                    "name": name,
                    "secret": {
                        "secretName": secret,
                        "items": [{"key": key, "path": key}],
                        "defaultMode": 0o440,  # owner root, group fsGroup (the runner): nobody else
                        "optional": optional,
                    },
                }
            )
            mounts.append({"name": name, "mountPath": folder, "readOnly": True})
            env.append({"name": variable, "value": f"{folder}/{key}"})
    if options.storage_root:
        env.append({"name": Env.STORAGE_ROOT, "value": options.storage_root})
        if options.storage_claim:
            volumes.append({"name": "results", "persistentVolumeClaim": {"claimName": options.storage_claim}})
            mounts.append({"name": "results", "mountPath": options.storage_root})
    resources = runner.resources.model_dump(mode="json")
    container = {
        "name": CONTAINER,
        "image": runner.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["fluxaudit", "run", f"env:{Env.SPEC}", "--quant", label],
        "env": env,
        "resources": {k: {r: str(v) for r, v in vals.items()} for k, vals in resources.items()},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",  # podFailurePolicy requires it; the Job controller retries
        "serviceAccountName": service_account,
        # No Kubernetes API token in the pod: the runner never calls the API, and Workload Identity is
        # served by GKE's metadata server, which identifies the pod itself.
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_UID,
            "fsGroup": RUNNER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "nodeSelector": dict(runner.node_selector),
        "tolerations": [t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in runner.tolerations],
        "containers": [container],
        "volumes": volumes,
    }
    if runner.priority_class_name:
        pod_spec["priorityClassName"] = runner.priority_class_name
    job_labels = dict(meta_labels)
    if runner.queue_name:
        job_labels[LABEL_KUEUE_QUEUE] = runner.queue_name
    job_spec: dict[str, Any] = {
        "backoffLimit": runner.backoff_limit,
        "activeDeadlineSeconds": runner.active_deadline_seconds,
        "ttlSecondsAfterFinished": runner.ttl_seconds_after_finished,
        "podFailurePolicy": {
            "rules": [
                # Spot preemption and node drains are not the runner's fault: retry for free.
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                # Bad spec or unusable input: retrying cannot help.
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": CONTAINER,
                        "operator": "In",
                        "values": [int(code) for code in PERMANENT_EXIT_CODES],
                    },
                },
            ]
        },
        "template": {"metadata": {"labels": meta_labels}, "spec": pod_spec},
    }
    if runner.queue_name:
        job_spec["suspend"] = True  # Kueue admits the Job by unsuspending it
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(audit.metadata.name, label),
            "namespace": namespace,
            "labels": job_labels,
            "annotations": {ANNOTATION_QUANT_LABEL: label},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": audit.metadata.name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }
