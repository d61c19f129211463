"""``fluxaudit report TARGET`` (#15): a bad target is a usage error that says what to give, missing
credentials are a credentials error, and nothing of a ``user:password@`` in the target is ever echoed."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from fluxaudit.contract import ExitCode
from fluxaudit_cli import main


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("gs://", "(none) is not a bucket name"),
        ("gs://my-bucket", "gs://my-bucket names no run folder"),
        ("gs://my-bucket/", "gs://my-bucket names no run folder"),
        ("gs://my-bucket/audit/../../etc", "is not a run folder path"),
        ("gs://Bad_Bucket!/audit/r", "is not a bucket name"),
    ],
)
def test_bad_targets_are_usage_errors(target: str, message: str) -> None:
    res = CliRunner().invoke(main, ["report", target])
    assert res.exit_code == ExitCode.INVALID_SPEC, res.output
    assert message in res.output and "Traceback" not in res.output


def test_userinfo_in_a_target_is_refused_and_never_echoed() -> None:
    res = CliRunner().invoke(main, ["report", "gs://alice:hunter2-s3cret@my-bucket/audit/r1"])
    assert res.exit_code == ExitCode.INVALID_SPEC and "take no user or password" in res.output
    assert "hunter2-s3cret" not in res.output and "alice" not in res.output


def test_missing_credentials_are_a_credentials_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in ("FIREBASE_CREDENTIALS", "FIREBASE_CREDENTIALS_FILE", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # no metadata server: fail fast, as off GCP
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud login either
    res = CliRunner().invoke(main, ["report", "gs://my-bucket/audit/r1"])
    assert res.exit_code == ExitCode.BAD_INPUT, res.output
    assert "no Google credentials" in res.output and "Traceback" not in res.output
