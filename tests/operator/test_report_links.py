def test_the_audit_clock_runs_from_creation_to_the_report() -> None:
    from datetime import UTC, datetime

    from fluxaudit_operator.report_links import audit_clock

    now = datetime(2026, 12, 3, 2, 30, 15, tzinfo=UTC)
    body = {"metadata": {"name": "a", "creationTimestamp": "2026-12-03T02:10:00Z"}}
    assert audit_clock(body, now) == {"reportWrittenAt": "2026-12-03T02:30:15Z", "auditSeconds": 1215.0}
    assert audit_clock({"metadata": {}}, now) == {"reportWrittenAt": "2026-12-03T02:30:15Z"}
