"""Report aggregation and report links for the FluxAudit status.

Idempotent by construction: the report is built only when ``report.json`` (written
last) is missing, and the status fields are derived from what storage holds, so an
operator killed halfway through simply does the missing half on its next pass.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fluxaudit.layout import RunLayout
from fluxaudit.spec import FluxAudit
from fluxaudit.storage import Storage

SUMMARY_KEYS = ("recommendedQuant", "suggestedGuidance", "compileVerdict")


def pinned(audit: FluxAudit, run_id: str) -> FluxAudit:
    """The audit with the run id the operator chose (the same one the runner pods were given)."""
    return audit.model_copy(update={"spec": audit.spec.model_copy(update={"run_id": run_id})})


def report_ready(audit: FluxAudit, storage: Storage) -> bool:
    return storage.exists(RunLayout(audit.spec.storage.prefix, audit.run_id()).report_json)


def location(audit: FluxAudit, storage: Storage) -> str:
    """Where REPORT.md lives, as a user would name it (``gs://…`` or a path): no secret in it."""
    path = RunLayout(audit.spec.storage.prefix, audit.run_id()).report_md
    local = getattr(storage, "local_path", None)
    if local is not None:
        return str(local(path))
    return f"gs://{audit.spec.storage.bucket}/{path}"


def needs_signing(status: dict[str, Any], now: datetime, lifetime_hours: float, fraction: float) -> bool:
    """A fresh link is due when there is none, or less than ``fraction`` of its lifetime is left."""
    if not status.get("reportURL"):
        return True
    expires = status.get("reportURLExpiresAt")
    if not expires:
        return False  # a local file link does not expire
    left = datetime.fromisoformat(expires.replace("Z", "+00:00")) - now
    return left < timedelta(hours=lifetime_hours * fraction)


def report_fields(audit: FluxAudit, storage: Storage, now: datetime) -> dict[str, Any]:
    """reportPath, a freshly signed reportURL with its expiry, and the report's summary."""
    layout = RunLayout(audit.spec.storage.prefix, audit.run_id())
    summary = storage.read_json(layout.report_json).get("summary", {})
    out: dict[str, Any] = {
        "reportPath": location(audit, storage),
        "summary": {k: summary.get(k) for k in SUMMARY_KEYS if summary.get(k) is not None},
    }
    local = getattr(storage, "local_path", None)
    if local is not None:
        out["reportURL"] = local(layout.report_md).resolve().as_uri()
        out["reportURLExpiresAt"] = None
    else:
        hours = audit.spec.storage.signed_url_hours
        out["reportURL"] = storage.generate_signed_url(layout.report_md, hours)  # type: ignore[attr-defined]
        out["reportURLExpiresAt"] = (now + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return out
