"""One reconcile step of a FluxAudit, as a pure function of what was observed.

The kopf handlers (create, resume, Job events, the slow timer) all call the same
step: read the FluxAudit (parsed once, by :func:`read_resource`), its Jobs and its
partials, call :func:`plan`, then apply the plan — create the missing Jobs (adopting
any that already exist), build the report when every group has ended, patch the
status.  Keeping the decision pure makes restarts boring: a new operator observes the
same world and plans the same thing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from fluxaudit.contract import ANNOTATION_QUANT_LABEL, FINISHED, Env
from fluxaudit.spec import FluxAudit, SpecError, parse_document

from .defaults import merge_defaults
from .jobs import JobOptions, build_job, job_name
from .policy import Policy, violations
from .status import GroupObservation, audit_status, group_status
from .waiting import Waiting

STORAGE_REQUIRED = (
    "spec.storage.bucket: required in a cluster: runner pods write results to a bucket "
    f"(or install the operator with a shared results volume, {Env.STORAGE_ROOT})"
)
SPEC_IMMUTABLE = "is immutable once the audit started: create a new FluxAudit (or set a new runId) instead"


@dataclass(frozen=True)
class Resource:
    """A FluxAudit as the API returned it, parsed once per pass."""

    body: dict[str, Any]
    #: the audit with the installation's defaults under its author's values and the run id pinned;
    #: None when the spec is invalid (``errors`` says why).
    audit: FluxAudit | None
    errors: str | None

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def uid(self) -> str:
        return str(self.body["metadata"]["uid"])

    @property
    def generation(self) -> int:
        return int(self.body["metadata"].get("generation") or 1)

    @property
    def status(self) -> dict[str, Any]:
        return self.body.get("status") or {}

    @property
    def run_id(self) -> str | None:
        return self.audit.run_id() if self.audit is not None else self.status.get("runId")


def read_resource(
    body: dict[str, Any], spec_defaults: dict[str, Any] | None = None, policy: Policy | None = None
) -> Resource:
    """Parse the object (server-set metadata is ignored) with the installation's defaults under what
    its author wrote, within what the installation allows (``policy``); pin the run id (chosen once,
    kept in the status, so a restart keeps it) and the results folder under the namespace
    (``{prefix}/{namespace}/{runId}``: tenants never share one)."""
    meta = body["metadata"]
    spec = body.get("spec")
    if spec_defaults and isinstance(spec, dict):
        spec = merge_defaults(spec, spec_defaults)
    doc = {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "metadata": {"name": meta["name"]}}
    try:
        audit = parse_document({**doc, "spec": spec}, f"FluxAudit {meta.get('namespace')}/{meta['name']}")
    except SpecError as exc:
        return Resource(body, None, "; ".join(f"{path}: {msg}" for path, msg in exc.errors))
    authored = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    default_bucket = ((spec_defaults or {}).get("storage") or {}).get("bucket")
    refused = violations(authored, policy or Policy(), default_bucket)
    if refused:
        return Resource(body, None, "; ".join(refused))
    run_id = (body.get("status") or {}).get("runId") or audit.run_id()
    storage = audit.spec.storage.model_copy(update={"prefix": f"{audit.spec.storage.prefix}/{meta['namespace']}"})
    pinned = audit.model_copy(update={"spec": audit.spec.model_copy(update={"run_id": run_id, "storage": storage})})
    return Resource(body, pinned, None)


@dataclass
class Plan:
    audit: FluxAudit | None
    run_id: str | None
    create: list[dict[str, Any]] = field(default_factory=list)
    aggregate: bool = False
    status: dict[str, Any] = field(default_factory=dict)


def _stalled(resource: Resource, message: str, now: str) -> Plan:
    old_status = resource.status
    status = audit_status(
        resource.generation, [], now, spec_error=message, previous_conditions=old_status.get("conditions")
    )
    # Keep what an earlier, valid generation recorded: its groups and report stay readable.
    for key in ("groups", "progress", "runId"):
        if key in old_status:
            status[key] = old_status[key]
    return Plan(audit=None, run_id=old_status.get("runId"), status=status)


def plan(
    resource: Resource,
    jobs: list[dict[str, Any]],
    partials: dict[str, dict[str, Any] | None],
    now: str,
    *,
    report_ready: bool,
    options: JobOptions | None = None,
    waiting: dict[str, Waiting] | None = None,
) -> Plan:
    """Decide everything one reconcile does.  ``report_ready``: REPORT.md for this run exists;
    ``waiting``: what holds each group's Job up (``waiting.explain``), by quant label."""
    options = options or JobOptions()
    waiting = waiting or {}
    audit = resource.audit
    if audit is None:
        return _stalled(resource, resource.errors or "spec: invalid", now)
    if audit.spec.storage.bucket is None and not options.storage_root:
        return _stalled(resource, STORAGE_REQUIRED, now)
    old_status = resource.status
    # Of what the author wrote: a later change of the installation's defaults is not an edit.
    spec_hash = hashlib.sha256(json.dumps(resource.body.get("spec"), sort_keys=True).encode()).hexdigest()[:16]
    if old_status.get("specHash") not in (None, spec_hash):
        # The CRD's CEL rule forbids this; an API server without CEL (or an edit of an
        # older CRD version) gets the same answer from the operator.
        return _stalled(resource, f"spec: {SPEC_IMMUTABLE}", now)

    run_id = audit.run_id()
    by_label = {j["metadata"].get("annotations", {}).get(ANNOTATION_QUANT_LABEL): j for j in jobs}
    before = {g.get("quant"): g for g in old_status.get("groups") or []}
    # A finished audit never starts work again: its Jobs go (TTL, by hand), its results stay.
    settled = old_status.get("phase") in FINISHED and old_status.get("observedGeneration") == resource.generation
    out = Plan(audit=audit, run_id=run_id)
    groups = []
    for label in audit.spec.group_labels():
        job = by_label.get(label)
        earlier = before.get(label)
        if job is None and (settled or (earlier is not None and earlier.get("phase") in FINISHED)):
            # The group ended (its Job deleted since): what the status knew stands; no Job again.
            groups.append(earlier or group_status(GroupObservation(label, job_name(audit.metadata.name, label), None,
                                                                   partials.get(label), 0)))  # fmt: skip
            continue
        if job is None:
            out.create.append(build_job(audit, label, namespace=resource.namespace, uid=resource.uid, options=options))
        groups.append(
            group_status(
                GroupObservation(
                    label,
                    job_name(audit.metadata.name, label),
                    job,
                    partials.get(label),
                    audit.spec.cells_for(label, gpu=audit.spec.requests_gpu),
                    waiting.get(label),
                )
            )
        )
    ended = all(g["phase"] in FINISHED for g in groups)
    out.aggregate = ended and not report_ready
    out.status = audit_status(
        resource.generation,
        groups,
        now,
        report_ready=report_ready and ended,
        previous_conditions=old_status.get("conditions"),
    )
    out.status["runId"] = run_id
    out.status["specHash"] = spec_hash
    return out
