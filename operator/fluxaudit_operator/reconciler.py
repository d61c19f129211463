"""One reconcile pass of a FluxAudit: observe, ``plan`` (pure), apply.

The kopf handlers only forward to ``Reconciler.reconcile``.  Blocking work — API
calls, storage reads, building the report — runs in a worker thread; a per-audit lock
keeps a Job event and the timer from reconciling the same audit at once.  Events are
posted from the event loop (kopf's poster lives there).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import kopf

from fluxaudit.contract import (
    ANNOTATION_QUANT_LABEL,
    API_GROUP,
    API_VERSION,
    FINALIZER,
    FINISHED,
    KIND,
    LABEL_KUEUE_QUEUE,
    timestamp,
    utc_now,
)
from fluxaudit.layout import RunLayout
from fluxaudit.report import build_report
from fluxaudit.spec import FluxAudit
from fluxaudit.storage import CredentialsError, Storage, StorageUnavailable, open_storage

from .config import OperatorConfig
from .kube import ForeignJob, Kube
from .metrics import Metrics
from .planning import Plan, Resource, plan, read_resource
from .report_links import audit_clock, needs_signing, report_fields, report_ready
from .status import Event, job_finished, transitions, with_storage_problem
from .waiting import Waiting, explain, owned_by

#: what started a pass: the audit itself (create, resume, edit), one of its Jobs, or the slow timer.
Trigger = Literal["audit", "job", "timer"]


def storage_problem(exc: StorageUnavailable | CredentialsError) -> str:
    """The condition reason for storage the operator waits out."""
    return "StorageCredentials" if isinstance(exc, CredentialsError) else "StorageUnavailable"


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """Our own finalizer and annotation names, and watches that cannot hang silently."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    settings.watching.server_timeout = 270  # the API server closes each watch after this
    settings.watching.client_timeout = 300  # and we drop a stream that went silent anyway
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    settings.posting.level = logging.INFO
    # No watching of CRDs and namespaces for changes: the RBAC then needs no cluster-wide reads
    # beyond FluxAudits and Jobs (the resources are discovered once, at start).
    settings.scanning.disabled = True


class Reconciler:
    def __init__(
        self,
        config: OperatorConfig,
        kube: Kube,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        clock: Callable[[], datetime] = utc_now,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.kube = kube
        self.logger = logger
        self.clock = clock
        self.metrics = metrics or Metrics()
        self._locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)

    @classmethod
    def from_env(cls, logger: logging.Logger | logging.LoggerAdapter[Any]) -> Reconciler:
        return cls(OperatorConfig.from_env(), Kube(), logger)

    async def reconcile(self, namespace: str, name: str, *, trigger: Trigger = "audit") -> None:
        async with self._locks[(namespace, name)]:
            with self.metrics.reconcile_seconds.labels(trigger).time():
                body, events, retry = await asyncio.to_thread(self.step, namespace, name, trigger)
        for event in events:
            kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        if retry:
            raise kopf.TemporaryError(retry, delay=30)

    def storage_for(self, audit: FluxAudit) -> Storage:
        return open_storage(audit.spec.storage, self.config.jobs.storage_root)

    def step(self, namespace: str, name: str, trigger: Trigger) -> tuple[dict[str, Any], list[Event], str | None]:
        """One pass: (the audit as read, events to post, a reason to retry soon or None).

        A finished audit is left alone by Job events (its Jobs' TTL deletions among them) and by the
        timer, but for re-signing its report link; an edit or an operator restart still reconciles it."""
        body = self.kube.get_audit(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.metrics.observe_status(namespace, name, None)
            return body or {}, [], None
        now = self.clock()
        resource = read_resource(body, self.config.spec_defaults, self.config.policy)
        old = resource.status
        settled = old.get("phase") in FINISHED and old.get("observedGeneration") == resource.generation
        if trigger != "audit" and settled and not (trigger == "timer" and self._resign_due(resource, now)):
            return body, [], None  # nothing can change any more: no storage or API reads
        try:
            return self._step(resource, now)
        except (StorageUnavailable, CredentialsError, ForeignJob) as exc:
            reason = "WaitingForOldJobs" if isinstance(exc, ForeignJob) else storage_problem(exc)
            status = with_storage_problem(old, resource.generation, timestamp(now), reason, str(exc)[:1000])
            self.metrics.reconcile_errors.labels(reason).inc()
            if not self.kube.patch_status(namespace, name, status):
                self.metrics.observe_status(namespace, name, None)
                return body, [], None  # deleted meanwhile: nothing to wait for
            self.metrics.observe_status(namespace, name, status)
            return body, [Event("Warning", reason, str(exc)[:1000])], f"{reason}: {exc}"

    def _info(self, resource: Resource, msg: str, *args: Any) -> None:
        """A log line that names its audit: kopf's formatters print ``k8s_ref`` as the JSON ``object``
        field or a ``[namespace/name]`` prefix; ``k8s_skip`` keeps it from being posted as an Event."""
        ref = {"apiVersion": API_VERSION, "kind": KIND, "namespace": resource.namespace,
               "name": resource.name, "uid": resource.uid}  # fmt: skip
        self.logger.info(msg, *args, extra={"k8s_ref": ref, "k8s_skip": True})

    def _waiting(self, resource: Resource, jobs: list[dict[str, Any]]) -> dict[str, Waiting]:
        """Why each unfinished Job waits: pods are read while any Job runs, Kueue Workloads only while
        one is suspended in a queue (an installation without Kueue is never asked)."""
        unfinished = [j for j in jobs if not job_finished(j)]
        if not unfinished:
            return {}
        pods = self.kube.list_pods(resource.namespace, resource.name)
        queued = [j for j in unfinished if (j.get("spec") or {}).get("suspend") and LABEL_KUEUE_QUEUE in
                  (j["metadata"].get("labels") or {})]  # fmt: skip
        workloads = self.kube.list_workloads(resource.namespace) if queued else []
        out = {}
        for job in unfinished:
            label = (job["metadata"].get("annotations") or {}).get(ANNOTATION_QUANT_LABEL)
            workload = next((w for w in workloads or [] if owned_by(w, job["metadata"].get("uid"))), None)
            found = explain(job, pods, workload, workloads_readable=workloads is not None)
            if label and found:
                out[label] = found
        return out

    def _resign_due(self, resource: Resource, now: datetime) -> bool:
        if resource.audit is None or not resource.status.get("reportPath"):
            return False
        hours = resource.audit.spec.storage.signed_url_hours
        return needs_signing(resource.status, now, hours, self.config.resign_fraction)

    def _step(self, resource: Resource, now: datetime) -> tuple[dict[str, Any], list[Event], str | None]:
        audit, old = resource.audit, resource.status
        storage: Storage | None = None
        partials: dict[str, Any] = {}
        ready = False
        problem: tuple[str, str] | None = None
        if audit is not None and (audit.spec.storage.bucket or self.config.jobs.storage_root):
            layout = RunLayout(audit.spec.storage.prefix, audit.run_id())
            try:
                storage = self.storage_for(audit)
                partials = {
                    label: storage.read_json_or_none(layout.partial(label)) for label in audit.spec.group_labels()
                }
                ready = report_ready(audit, storage)
            except (StorageUnavailable, CredentialsError) as exc:
                # The operator cannot see storage; the runners have their own credentials, so their
                # Jobs still start, and the next pass that can read storage catches up.
                problem, storage, partials = (storage_problem(exc), str(exc)[:1000]), None, {}
        jobs = self.kube.list_jobs(resource.namespace, resource.name, resource.uid) if audit is not None else []
        waiting = self._waiting(resource, jobs)

        def decide(report_ready: bool) -> Plan:
            return plan(resource, jobs, partials, timestamp(now), report_ready=report_ready, options=self.config.jobs,
                        waiting=waiting)  # fmt: skip

        decided = decide(ready)
        events: list[Event] = []
        for manifest in decided.create:
            created = self.kube.create_job(manifest)
            if created:
                self.metrics.jobs_created.inc()
            self._info(resource, "%s Job %s", "created" if created else "adopted", manifest["metadata"]["name"])
            job = manifest["metadata"]["name"]
            events.append(
                Event(
                    "Normal",
                    "JobCreated" if created else "JobAdopted",
                    f"{'created' if created else 'adopted'} Job {job}",
                )
            )
        fresh_report = False
        if decided.aggregate and audit is not None and storage is not None:
            self._info(resource, "building the report for run %s", audit.run_id())
            with self.metrics.report_build_seconds.time():
                build_report(audit, storage)
            fresh_report = ready = True
            decided = decide(True)
        status = decided.status
        hours = audit.spec.storage.signed_url_hours if audit is not None else 0
        finished = ready and status["phase"] in FINISHED and audit is not None and storage is not None
        if finished and (fresh_report or needs_signing(old, now, hours, self.config.resign_fraction)):
            assert audit is not None and storage is not None
            status.update(report_fields(audit, storage, now))
        if fresh_report:  # the audit's own wall clock: created → report written (the report has the groups' side)
            status.update(audit_clock(resource.body, now))
            if "auditSeconds" in status:
                self.metrics.audit_seconds.observe(status["auditSeconds"])
        events += transitions(old, status)
        if problem is not None:
            status = with_storage_problem(status, resource.generation, timestamp(now), *problem)
            events.append(Event("Warning", *problem))
            self.metrics.reconcile_errors.labels(problem[0]).inc()
        if not self.kube.patch_status(resource.namespace, resource.name, status):
            self._info(resource, "deleted while reconciling; nothing more to do")
            self.metrics.observe_status(resource.namespace, resource.name, None)
            return resource.body, [], None
        self.metrics.observe_status(resource.namespace, resource.name, status)
        return resource.body, events, (f"{problem[0]}: {problem[1]}" if problem else None)
