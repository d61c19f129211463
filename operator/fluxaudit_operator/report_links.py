"""Where a FluxAudit's report is, and a link to it that stays alive while the audit exists.

Idempotent by construction: the report is built only when ``report.json`` (written
last) is missing, and the status fields are derived from what storage holds, so an
operator killed halfway through simply does the missing half on its next pass.  A
signed link is re-signed once less than a set share of its lifetime is left.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fluxaudit.contract import parse_timestamp, timestamp
from fluxaudit.layout import RunLayout
from fluxaudit.spec import FluxAudit
from fluxaudit.storage import Storage

SUMMARY_KEYS = ("recommendedQuant", "suggestedGuidance", "compileVerdict")


def _layout(audit: FluxAudit) -> RunLayout:
    return RunLayout(audit.spec.storage.prefix, audit.run_id())


def report_ready(audit: FluxAudit, storage: Storage) -> bool:
    return storage.exists(_layout(audit).report_json)


def needs_signing(status: dict[str, Any], now: datetime, lifetime_hours: float, fraction: float) -> bool:
    """A fresh link is due when there is none, or less than ``fraction`` of its lifetime is left."""
    if not status.get("reportURL"):
        return True
    expires = status.get("reportURLExpiresAt")
    if not expires:
        return False  # a local file link does not expire
    return parse_timestamp(expires) - now < timedelta(hours=lifetime_hours * fraction)


def audit_clock(body: dict[str, Any], now: datetime) -> dict[str, Any]:
    """reportWrittenAt, and auditSeconds from the resource's creation to it (with one Job per quant, the
    groups' own times sum to more: the report's Groups section gives both sides)."""
    fields: dict[str, Any] = {"reportWrittenAt": timestamp(now)}
    created = (body.get("metadata") or {}).get("creationTimestamp")
    if created:
        fields["auditSeconds"] = round((now - parse_timestamp(created)).total_seconds(), 1)
    return fields


def report_fields(audit: FluxAudit, storage: Storage, now: datetime) -> dict[str, Any]:
    """reportPath (REPORT.md; no secret in it), a freshly signed reportURL of report.html with its expiry, and
    the report's summary."""
    layout = _layout(audit)
    summary = storage.read_json(layout.report_json).get("summary", {})
    hours = audit.spec.storage.signed_url_hours
    return {
        "reportPath": storage.location(layout.report_md),
        "summary": {k: summary.get(k) for k in SUMMARY_KEYS if summary.get(k) is not None},
        # the self-contained page: its pictures are embedded, so no other object's link can expire under it
        "reportURL": storage.signed_url(layout.report_html, hours),
        "reportURLExpiresAt": timestamp(now + timedelta(hours=hours)) if storage.signed_urls_expire else None,
    }
