"""One reconcile step of a FluxAudit, as a pure function of what was observed.

The kopf handlers (create, resume, Job events, the slow timer) all call the same
step: read the FluxAudit, its Jobs and its partials, call ``plan``, then apply the
plan — create the missing Jobs (adopting any that already exist), build the report
when every group has ended, patch the status.  Keeping the decision pure makes
restarts boring: a new operator observes the same world and plans the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fluxaudit.spec import FluxAudit, SpecError, parse_document

from .jobs import ANNOTATION_LABEL, build_job, job_name
from .status import GroupObservation, audit_status, group_status


@dataclass
class Plan:
    audit: FluxAudit | None
    run_id: str | None
    create: list[dict[str, Any]] = field(default_factory=list)
    aggregate: bool = False
    status: dict[str, Any] = field(default_factory=dict)


def parse_resource(body: dict[str, Any]) -> FluxAudit:
    """The FluxAudit object as the API returned it (server-set metadata is ignored)."""
    doc = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {"name": body["metadata"]["name"]},
        "spec": body.get("spec"),
    }
    return parse_document(doc, f"FluxAudit {body['metadata'].get('namespace')}/{body['metadata']['name']}")


def plan(
    body: dict[str, Any],
    jobs: list[dict[str, Any]],
    partials: dict[str, dict[str, Any] | None],
    now: str,
    *,
    report_ready: bool,
) -> Plan:
    meta = body["metadata"]
    generation = int(meta.get("generation") or 1)
    old_status = body.get("status") or {}
    try:
        audit = parse_resource(body)
    except SpecError as exc:
        message = "; ".join(f"{path}: {msg}" for path, msg in exc.errors)
        status = audit_status(generation, [], now, spec_error=message, previous_conditions=old_status.get("conditions"))
        return Plan(audit=None, run_id=None, status=status)

    # The run id is chosen once and kept in the status: a restart must not change it.
    run_id = old_status.get("runId") or audit.run_id()
    by_label = {j["metadata"].get("annotations", {}).get(ANNOTATION_LABEL): j for j in jobs}
    out = Plan(audit=audit, run_id=run_id)
    groups = []
    for label in audit.spec.group_labels():
        job = by_label.get(label)
        if job is None:
            out.create.append(build_job(audit, label, namespace=meta["namespace"], uid=meta["uid"], run_id=run_id))
        groups.append(
            group_status(GroupObservation(label, job_name(audit.metadata.name, label), job, partials.get(label)))
        )
    ended = all(g["phase"] in ("Succeeded", "Failed") for g in groups)
    out.aggregate = ended and not report_ready
    out.status = audit_status(
        generation, groups, now, report_ready=report_ready and ended, previous_conditions=old_status.get("conditions")
    )
    out.status["runId"] = run_id
    return out
