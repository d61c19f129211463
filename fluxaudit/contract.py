"""The names the operator, the runner and the CLI communicate by: one home for each.

A Job's environment, its exit codes, the labels that find it again, the phases a
status moves through: the operator writes them and the runner or ``kubectl`` reads
them, so a typo on one side breaks the other silently.  Everything here is a
constant or a small pure helper; this module imports nothing heavier than pydantic
users already load.
"""

from __future__ import annotations

import datetime as dt
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from .spec import FluxAudit

# -- the API --------------------------------------------------------------------------------
API_GROUP: Final = "fluxaudit.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{API_GROUP}/{VERSION}"
KIND: Final = "FluxAudit"
PLURAL: Final = "fluxaudits"
SINGULAR: Final = "fluxaudit"
SHORT_NAME: Final = "fa"

# -- labels and annotations on the objects the operator creates ------------------------------
LABEL_AUDIT: Final = f"{API_GROUP}/audit"
LABEL_QUANT: Final = f"{API_GROUP}/quant"
LABEL_RUN: Final = f"{API_GROUP}/run-id"
ANNOTATION_QUANT_LABEL: Final = f"{API_GROUP}/quant-label"
FINALIZER: Final = f"{API_GROUP}/finalizer"
LABEL_KUEUE_QUEUE: Final = "kueue.x-k8s.io/queue-name"


# -- environment variables a runner pod (or a local run) reads ---------------------------------
class Env:
    """Names only: who sets each one is said beside it."""

    #: the audit document a Job's runner reads (``fluxaudit run env:FLUXAUDIT_SPEC``); set by the operator.
    SPEC: Final = "FLUXAUDIT_SPEC"
    #: a shared results folder instead of a bucket; set by the operator's installation.
    STORAGE_ROOT: Final = "FLUXAUDIT_STORAGE_ROOT"
    #: Inductor/Triton caches that outlive the pod; set by the operator (the model-cache volume).
    COMPILE_CACHE: Final = "FLUXAUDIT_COMPILE_CACHE"
    #: how long a storage call retries through an outage, seconds.
    STORAGE_RETRY_SECONDS: Final = "FLUXAUDIT_STORAGE_RETRY_SECONDS"
    #: the service account that signs URLs through IAM (Workload Identity).
    SIGNER_EMAIL: Final = "FLUXAUDIT_SIGNER_EMAIL"
    #: the IAM Credentials API endpoint (tests stand in for it on 127.0.0.1).
    IAM_ENDPOINT: Final = "FLUXAUDIT_IAM_ENDPOINT"
    #: base64 of a service-account key JSON (the original service's Secret Manager convention).
    FIREBASE_CREDENTIALS: Final = "FIREBASE_CREDENTIALS"
    #: a file holding the same (base64 or plain JSON): how a runner Job receives it, from a mounted Secret.
    FIREBASE_CREDENTIALS_FILE: Final = "FIREBASE_CREDENTIALS_FILE"
    #: the node a runner pod landed on (downward API): recorded with the timings.
    NODE_NAME: Final = "NODE_NAME"
    HF_HOME: Final = "HF_HOME"
    HF_TOKEN: Final = "HF_TOKEN"
    #: huggingface_hub reads the token from this file (a mounted Secret in a runner Job).
    HF_TOKEN_PATH: Final = "HF_TOKEN_PATH"


# -- exit codes: the Job's podFailurePolicy reads them ----------------------------------------
class ExitCode(IntEnum):
    OK = 0
    #: the audit finished but some groups failed (or storage was down): a retry may pass.
    GROUPS_FAILED = 1
    #: the spec is invalid, or the command was misused.
    INVALID_SPEC = 2
    #: the audit's input is unusable (missing image, bad GGUF, a spec changed under a run).
    BAD_INPUT = 3
    #: ``fluxaudit compare``: the second audit regressed beyond the thresholds (for CI gates).
    REGRESSION = 4


#: exit codes no retry can fix: the Job fails at once instead of retrying.
PERMANENT_EXIT_CODES: Final = (ExitCode.INVALID_SPEC, ExitCode.BAD_INPUT)

# -- phases and conditions of a FluxAudit's status --------------------------------------------
GroupPhase = Literal["Pending", "Running", "Succeeded", "Failed"]
AuditPhase = Literal["Pending", "Running", "Aggregating", "Succeeded", "Failed"]
PENDING: Final = "Pending"
RUNNING: Final = "Running"
AGGREGATING: Final = "Aggregating"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
#: phases after which nothing changes any more (for a group, and for the audit).
FINISHED: Final = (SUCCEEDED, FAILED)

COND_READY: Final = "Ready"
COND_SUCCEEDED: Final = "Succeeded"
COND_RECONCILING: Final = "Reconciling"
COND_STALLED: Final = "Stalled"


# -- time --------------------------------------------------------------------------------------
def utc_now() -> dt.datetime:
    """Now, in UTC, to the second: every timestamp FluxAudit writes has this precision."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def timestamp(moment: dt.datetime | None = None) -> str:
    """RFC 3339 in UTC with a ``Z`` (what Kubernetes writes): ``2026-12-02T18:03:51Z``."""
    moment = utc_now() if moment is None else moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- the audit document ------------------------------------------------------------------------
def audit_document(audit: FluxAudit, run_id: str | None = None) -> dict[str, Any]:
    """The audit as stored with its run and handed to a runner Job: envelope and spec, no status,
    only the name from the metadata (server-set fields would change the bytes, not the audit)."""
    # Nulls stay: a null is a choice where the default is not null (``reference: null`` picks the largest GGUF).
    doc = audit.model_dump(by_alias=True, mode="json", exclude={"status"})
    doc["metadata"] = {"name": audit.metadata.name}
    if run_id is not None:
        doc["spec"]["runId"] = run_id
    return doc
