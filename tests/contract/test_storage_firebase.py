"""Firebase Storage backend against gcp-storage-emulator on 127.0.0.1."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from pathlib import Path

import google.oauth2.credentials
import pytest
from google.oauth2 import service_account

from fluxaudit.inputs import InputError, resolve
from fluxaudit.layout import UnsafePathError
from fluxaudit.spec import InputSpec
from fluxaudit.storage import CredentialsError, NotFound, StorageUnavailable, open_storage
from fluxaudit.storage.firebase import FirebaseStorage
from fluxaudit.storage.gcp_auth import SCOPES, IamSigner, load_credentials
from tests.support.gcs import BUCKET, Emulator, ServiceAccountKey, SignBlobStandIn, free_port, make_key, verify_v4_url


@pytest.fixture(scope="module")
def key() -> ServiceAccountKey:
    return make_key()


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    emu = Emulator(tmp_path / "gcs")
    emu.start(create_bucket=True)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emu.host)
    yield emu
    emu.stop()


@pytest.fixture
def store(emulator: Emulator, key: ServiceAccountKey) -> FirebaseStorage:
    return FirebaseStorage(BUCKET, credentials=key.credentials(), retry_deadline_seconds=10)


def test_round_trip_list_overwrite_content_types(store: FirebaseStorage, emulator: Emulator) -> None:
    store.write_bytes("audit/r/a.png", b"\x89PNG-1", "image/png")
    store.write_json("audit/r/partials/Q4_0.json", {"cells": [1]})
    store.write_bytes("audit/r/a.png", b"\x89PNG-2", "image/png")
    assert store.read_bytes("audit/r/a.png") == b"\x89PNG-2"
    assert store.read_json("audit/r/partials/Q4_0.json") == {"cells": [1]}
    assert emulator.content_type(BUCKET, "audit/r/a.png") == "image/png"
    assert emulator.content_type(BUCKET, "audit/r/partials/Q4_0.json") == "application/json"
    assert store.list("audit/r") == ["audit/r/a.png", "audit/r/partials/Q4_0.json"]
    assert store.list("audit/none") == []
    assert store.exists("audit/r/a.png") and not store.exists("audit/r/b.png")
    with pytest.raises(NotFound):
        store.read_bytes("audit/r/missing.json")
    assert store.read_json_or_none("audit/r/partials/Q8_0.json") is None


@pytest.mark.parametrize("path", ["../x", "/abs/x", "a/../../b", "a/\x07b", "a//b"])
def test_paths_cannot_leave_the_prefix(store: FirebaseStorage, path: str) -> None:
    with pytest.raises(UnsafePathError):
        store.write_bytes(path, b"x")


def test_signed_url_verifies_and_tampering_fails(store: FirebaseStorage, key: ServiceAccountKey) -> None:
    store.write_bytes("audit/r/REPORT.md", b"# report", "text/markdown")
    url = store.signed_url("audit/r/REPORT.md", expiry_hours=2)
    assert url.startswith(f"https://storage.googleapis.com/{BUCKET}/audit/r/REPORT.md?")
    params = verify_v4_url(url, key.public)
    assert params["X-Goog-Expires"] == str(2 * 3600)
    assert params["X-Goog-Credential"].startswith(key.info["client_email"] + "/")
    for tampered in (
        url.replace("REPORT.md", "REPORT.mx"),
        url.replace("X-Goog-Expires=7200", "X-Goog-Expires=604800"),
    ):
        with pytest.raises(ValueError, match="signature does not match"):
            verify_v4_url(tampered, key.public)
    with pytest.raises(ValueError, match="signature does not match"):
        verify_v4_url(url, make_key().public)  # another key
    with pytest.raises(ValueError, match="expired"):
        verify_v4_url(url, key.public, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=3))


@pytest.mark.parametrize("hours", [0, 0.5, 169, 24 * 30])
def test_expiry_bounds_checked_before_any_call(store: FirebaseStorage, hours: float) -> None:
    with pytest.raises(ValueError, match=r"outside 1…168 h"):
        store.signed_url("audit/r/never-uploaded.png", expiry_hours=hours)
    assert not store.exists("audit/r/never-uploaded.png")


def test_workload_identity_signs_through_sign_blob(store: FirebaseStorage, key: ServiceAccountKey) -> None:
    stand_in = SignBlobStandIn(key, fail_next=[503])  # one transient failure, then success
    wi_creds = google.oauth2.credentials.Credentials(token="wi-token")  # no private key, like the metadata server
    with stand_in.serve() as endpoint:
        signer = IamSigner(wi_creds, key.info["client_email"], endpoint=endpoint, deadline_seconds=10)
        url = store._bucket.blob("audit/r/a.png").generate_signed_url(
            version="v4",
            expiration=dt.timedelta(hours=1),
            method="GET",
            credentials=signer,
            api_access_endpoint="https://storage.googleapis.com",
        )
        verify_v4_url(url, key.public)
        assert len(stand_in.calls) == 2 and all(c["auth"] == "Bearer wi-token" for c in stand_in.calls)
        # A 403 is permanent and says which role is missing.
        bad = IamSigner(
            google.oauth2.credentials.Credentials(token="nope"), key.info["client_email"], endpoint=endpoint
        )
        with pytest.raises(Exception, match="serviceAccountTokenCreator"):
            bad.sign_bytes(b"x")


def test_session_assets_and_gs_uris(store: FirebaseStorage) -> None:
    store.write_bytes("users/u1/sessions/D1A406F5/original.jpg", b"jpg")
    store.write_bytes("users/u1/sessions/D1A406F5/mask_auto.png", b"png")
    assets = resolve(InputSpec(user_id="u1", session_id="D1A406F5"), store)
    assert (assets.image, assets.mask) == (b"jpg", b"png")
    uris = InputSpec(
        image=f"gs://{BUCKET}/users/u1/sessions/D1A406F5/original.jpg", mask=f"gs://{BUCKET}/nope/mask.png"
    )
    with pytest.raises(InputError, match=f"input.mask: gs://{BUCKET}/nope/mask.png does not exist"):
        resolve(uris, store)
    with pytest.raises(InputError, match=r"has no image at users/u2/sessions/x/original\.jpg"):
        resolve(InputSpec(user_id="u2", session_id="x"), store)


def test_outage_is_retried_then_succeeds(store: FirebaseStorage, emulator: Emulator) -> None:
    store.write_json("audit/r/partials/Q4_0.json", {"cells": [1]})
    emulator.stop()
    restart = threading.Timer(1.5, emulator.start)
    restart.start()
    t0 = time.monotonic()
    store.write_json("audit/r/partials/Q4_0.json", {"cells": [1, 2]})
    restart.join()
    assert time.monotonic() - t0 >= 1.0  # it really waited for the emulator to come back
    assert store.read_json("audit/r/partials/Q4_0.json") == {"cells": [1, 2]}


def test_outage_for_good_is_a_clear_error_and_corrupts_nothing(emulator: Emulator, key: ServiceAccountKey) -> None:
    store = FirebaseStorage(BUCKET, credentials=key.credentials(), retry_deadline_seconds=2)
    store.write_json("audit/r/partials/Q4_0.json", {"cells": [1]})
    emulator.stop()
    with pytest.raises(
        StorageUnavailable, match=r"upload gs://fluxaudit-test/audit/r/partials/Q4_0.json still failing"
    ):
        store.write_json("audit/r/partials/Q4_0.json", {"cells": [1, 2]})
    emulator.start()
    assert store.read_json("audit/r/partials/Q4_0.json") == {"cells": [1]}


def test_credentials_from_environment(monkeypatch: pytest.MonkeyPatch, key: ServiceAccountKey) -> None:
    monkeypatch.setenv("FIREBASE_CREDENTIALS", base64.b64encode(json.dumps(key.info).encode()).decode())
    creds = load_credentials()
    assert creds.service_account_email == key.info["client_email"]
    monkeypatch.setenv("FIREBASE_CREDENTIALS", "s3cr3t-VALUE!")
    with pytest.raises(CredentialsError) as exc:
        load_credentials()
    assert "base64 -w0" in str(exc.value) and "s3cr3t" not in str(exc.value)  # never echo the secret


def test_open_storage_picks_firebase_for_a_bucket(emulator: Emulator, key: ServiceAccountKey, monkeypatch) -> None:
    from fluxaudit.spec import StorageSpec

    monkeypatch.setenv("FIREBASE_CREDENTIALS", base64.b64encode(json.dumps(key.info).encode()).decode())
    local = open_storage(StorageSpec(bucket=BUCKET), "/tmp/x")
    assert local.description.startswith("file://")
    # The bucket backend needs its token pre-set here (no OAuth endpoint offline), so check the type only.
    assert type(open_storage(StorageSpec(bucket=BUCKET))).__name__ == "FirebaseStorage"


@pytest.mark.slow
def test_runner_and_report_end_to_end_on_firebase(
    tiny_model, store: FirebaseStorage, key: ServiceAccountKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    from fluxaudit.spec import parse_document
    from fluxaudit_runner.local import run_audit
    from tests.support.helpers import audit_doc

    store.write_bytes("users/u1/sessions/s1/original.jpg", tiny_model.image.read_bytes())
    store.write_bytes("users/u1/sessions/s1/mask_auto.png", tiny_model.mask.read_bytes())
    quants = [{"label": q, "file": tiny_model.gguf_files[q]} for q in ("Q4_0", "Q8_0")]
    doc = audit_doc(tiny_model, quants=quants, guidanceScales=[2], storage={"bucket": BUCKET, "signedUrlHours": 24})
    doc["spec"]["input"] = {"userId": "u1", "sessionId": "s1"}
    audit = parse_document(doc)
    outcome = run_audit(audit, store)
    assert outcome.ok, outcome.failures
    root = f"audit/{audit.run_id()}"
    names = store.list(root)
    for expected in (
        "partials/Q4_0.json",
        "partials/Q8_0.json",
        "Q4_0_gs2.png",
        "Q8_0_gs2.png",
        "REPORT.md",
        "report.html",
        "report.csv",
        "report.json",
        "contact_sheet.png",
        "diff_sheet.png",
        "latency.png",
        "drift.png",
        "spec.json",
    ):
        assert f"{root}/{expected}" in names, expected
    md = store.read_bytes(f"{root}/REPORT.md").decode()
    # REPORT.md links its pictures relative to itself (readable from the bucket or a copy of the folder),
    # so no link in it expires; report.html embeds them, and its own signed link is what people open.
    links = re.findall(r"\]\(([^)]+\.png)\)", md)
    assert len(links) >= 6 and all("/" not in link and ":" not in link for link in links), links
    page = store.read_bytes(f"{root}/report.html").decode()
    assert page.count('src="data:image/') >= 6 and "storage.googleapis.com" not in page
    assert "private_key" not in md and "test-token" not in md and "private_key" not in page

    # The report rebuilds from the bucket alone (its stored spec.json), and the CLI prints a signed link.
    from click.testing import CliRunner

    import fluxaudit.storage.firebase as firebase_module
    from fluxaudit_cli import main

    monkeypatch.setattr(firebase_module, "load_credentials", key.credentials)  # the pod's source: the test key
    res = CliRunner().invoke(main, ["report", f"gs://{BUCKET}/{root}"])
    assert res.exit_code == 0, res.output
    url = res.output.strip().splitlines()[-1]
    assert url.startswith(f"https://storage.googleapis.com/{BUCKET}/{root}/report.html?")
    verify_v4_url(url, key.public)


def test_a_second_writer_of_a_partial_fails_instead_of_interleaving(emulator: Emulator, key: ServiceAccountKey) -> None:
    """Two runs of one group on one bucket (a stale pod and its replacement): each read the partial,
    the first to write wins, the second gets RunLocked and writes nothing."""
    from fluxaudit.storage import RunLocked

    first = FirebaseStorage(BUCKET, credentials=key.credentials(), retry_deadline_seconds=10)
    second = FirebaseStorage(BUCKET, credentials=key.credentials(), retry_deadline_seconds=10)
    path = "audit/r/partials/Q8_0.json"
    assert first.read_json_or_none(path) is None and second.read_json_or_none(path) is None
    first.write_json(path, {"cells": [1]}, guard=True)
    with pytest.raises(RunLocked, match="changed by another writer"):
        second.write_json(path, {"cells": ["other"]}, guard=True)
    first.write_json(path, {"cells": [1, 2]}, guard=True)  # the first keeps writing, cell after cell
    assert second.read_json(path) == {"cells": [1, 2]}
    second.write_json(path, {"cells": [1, 2, 3]}, guard=True)  # a writer that re-read may go on
    with pytest.raises(RunLocked):
        first.write_json(path, {"cells": [1, 2, "lost"]}, guard=True)
    assert first.read_json(path) == {"cells": [1, 2, 3]}
    first.write_json("audit/r/inputs/image.png", b"x".decode(), guard=False)  # unguarded objects: last wins
    second.write_json("audit/r/inputs/image.png", b"y".decode(), guard=False)


def test_revoked_credentials_are_a_credentials_error_not_a_traceback(emulator: Emulator) -> None:
    """A key Google refuses (invalid_grant) is permanent: CredentialsError, naming the source."""
    from tests.support.gcs import TokenStandIn

    port = free_port()
    key = make_key(token_uri=f"http://127.0.0.1:{port}/token")
    stand_in = TokenStandIn(key, port=port, revoked=True)
    with stand_in.serve():
        creds = service_account.Credentials.from_service_account_info(key.info, scopes=SCOPES)  # no token yet
        store = FirebaseStorage(BUCKET, credentials=creds, retry_deadline_seconds=5)
        with pytest.raises(CredentialsError, match="Google refused the credentials") as err:
            store.read_json_or_none("audit/r/partials/Q8_0.json")
    assert key.info["private_key"][40:80] not in str(err.value) and stand_in.calls >= 1
