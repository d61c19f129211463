"""One reconcile step of a FluxAudit, as a pure function of what was observed.

The kopf handlers (create, resume, Job events, the slow timer) all call the same
step: read the FluxAudit, its Jobs and its partials, call ``plan``, then apply the
plan — create the missing Jobs (adopting any that already exist), build the report
when every group has ended, patch the status.  Keeping the decision pure makes
restarts boring: a new operator observes the same world and plans the same thing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from fluxaudit.spec import FluxAudit, SpecError, parse_document

from .defaults import merge_defaults
from .jobs import ANNOTATION_LABEL, JobOptions, build_job, job_name
from .status import GroupObservation, audit_status, group_status

STORAGE_REQUIRED = (
    "spec.storage.bucket: required in a cluster: runner pods write results to a bucket "
    "(or install the operator with a shared results volume, FLUXAUDIT_STORAGE_ROOT)"
)
SPEC_IMMUTABLE = "is immutable once the audit started: create a new FluxAudit (or set a new runId) instead"


@dataclass
class Plan:
    audit: FluxAudit | None
    run_id: str | None
    create: list[dict[str, Any]] = field(default_factory=list)
    aggregate: bool = False
    status: dict[str, Any] = field(default_factory=dict)


def parse_resource(body: dict[str, Any], spec_defaults: dict[str, Any] | None = None) -> FluxAudit:
    """The FluxAudit object as the API returned it (server-set metadata is ignored), with the
    installation's defaults under what its author wrote."""
    spec = body.get("spec")
    if spec_defaults and isinstance(spec, dict):
        spec = merge_defaults(spec, spec_defaults)
    doc = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {"name": body["metadata"]["name"]},
        "spec": spec,
    }
    return parse_document(doc, f"FluxAudit {body['metadata'].get('namespace')}/{body['metadata']['name']}")


def _stalled(body: dict[str, Any], message: str, now: str) -> Plan:
    generation = int(body["metadata"].get("generation") or 1)
    old_status = body.get("status") or {}
    status = audit_status(generation, [], now, spec_error=message, previous_conditions=old_status.get("conditions"))
    # Keep what an earlier, valid generation recorded: its groups and report stay readable.
    for key in ("groups", "progress", "runId"):
        if key in old_status:
            status[key] = old_status[key]
    return Plan(audit=None, run_id=old_status.get("runId"), status=status)


def plan(
    body: dict[str, Any],
    jobs: list[dict[str, Any]],
    partials: dict[str, dict[str, Any] | None],
    now: str,
    *,
    report_ready: bool,
    options: JobOptions | None = None,
    spec_defaults: dict[str, Any] | None = None,
) -> Plan:
    """Decide everything one reconcile does.  ``report_ready``: REPORT.md for this run exists."""
    options = options or JobOptions()
    meta = body["metadata"]
    generation = int(meta.get("generation") or 1)
    old_status = body.get("status") or {}
    try:
        audit = parse_resource(body, spec_defaults)
    except SpecError as exc:
        return _stalled(body, "; ".join(f"{path}: {msg}" for path, msg in exc.errors), now)
    if audit.spec.storage.bucket is None and not options.storage_root:
        return _stalled(body, STORAGE_REQUIRED, now)
    # Of what the author wrote: a later change of the installation's defaults is not an edit.
    spec_hash = hashlib.sha256(json.dumps(body.get("spec"), sort_keys=True).encode()).hexdigest()[:16]
    if old_status.get("specHash") not in (None, spec_hash):
        # The CRD's CEL rule forbids this; an API server without CEL (or an edit of an
        # older CRD version) gets the same answer from the operator.
        return _stalled(body, f"spec: {SPEC_IMMUTABLE}", now)

    # The run id is chosen once and kept in the status: a restart must not change it.
    run_id = old_status.get("runId") or audit.run_id()
    by_label = {j["metadata"].get("annotations", {}).get(ANNOTATION_LABEL): j for j in jobs}
    out = Plan(audit=audit, run_id=run_id)
    groups = []
    for label in audit.spec.group_labels():
        job = by_label.get(label)
        if job is None:
            out.create.append(
                build_job(audit, label, namespace=meta["namespace"], uid=meta["uid"], run_id=run_id, options=options)
            )
        groups.append(
            group_status(
                GroupObservation(
                    label,
                    job_name(audit.metadata.name, label),
                    job,
                    partials.get(label),
                    audit.spec.cells_per_group,
                )
            )
        )
    ended = all(g["phase"] in ("Succeeded", "Failed") for g in groups)
    out.aggregate = ended and not report_ready
    out.status = audit_status(
        generation, groups, now, report_ready=report_ready and ended, previous_conditions=old_status.get("conditions")
    )
    out.status["runId"] = run_id
    out.status["specHash"] = spec_hash
    return out
