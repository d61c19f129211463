"""Faults, injected end to end on the emulated cluster: runner pods killed and preempted,
the operator down at creation and killed halfway through aggregation, a truncated GGUF
file, storage outages (for a while and for good), missing session assets — and, through
all of it, no secret or signed URL in any log or Event.

Waits are on conditions with timeouts; the one fixed interval is an injected outage's
length, which is the fault itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

import pytest
from kubernetes import client

from fluxaudit.spec import parse_document
from fluxaudit.storage.firebase import FirebaseStorage
from tests.support.gcs import BUCKET, Emulator, ServiceAccountKey, TokenStandIn, free_port, make_key, verify_v4_url
from tests.support.helpers import audit_doc
from tests.support.kube.cluster import EmulatedCluster, OperatorProcess, wait_for

pytestmark = pytest.mark.slow
NS = "audits"
API = ("fluxaudit.dev", "v1alpha1", NS, "fluxaudits")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EmulatedCluster]:
    with EmulatedCluster(tmp_path) as c:
        yield c


def model_cache(cluster: EmulatedCluster, tmp_path: Path) -> dict[str, str]:
    """A model-cache volume holding a copy of the tiny model's hub cache (tests may add files to it)."""
    models = tmp_path / "model-cache"
    cluster.bind_claim("fluxaudit-models", models)
    shutil.copytree(Path(os.environ["HF_HOME"]), models / "huggingface", symlinks=True)
    return {"FLUXAUDIT_MODEL_CACHE_CLAIM": "fluxaudit-models"}


def status(cluster: EmulatedCluster, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(cluster.client()).get_namespaced_custom_object(*API, name).get("status") or {}


def finished(cluster: EmulatedCluster, name: str) -> dict[str, Any] | None:
    s = status(cluster, name)
    return s if s.get("phase") in ("Succeeded", "Failed") and s.get("reportURL") else None


def job(cluster: EmulatedCluster, name: str) -> Any:
    return client.BatchV1Api(cluster.client()).read_namespaced_job(name, NS)


def truncated_gguf(tiny_model: Any, hf_home: Path) -> Path:
    """A GGUF file cut short, published in the (copied) hub repo next to the good ones."""
    good = next(hf_home.glob(f"hub/models--*/snapshots/*/{tiny_model.gguf_files['Q8_0']}"))
    target = good.parent / "flux1-fill-tiny-truncated.gguf"
    target.write_bytes(good.resolve().read_bytes()[:4096])
    return target


def cells_in(partial_path: Path) -> int:
    try:
        return len(json.loads(partial_path.read_text()).get("cells") or [])
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def test_runners_killed_and_preempted_operator_killed_mid_audit_and_mid_aggregation(
    tiny_model, cluster: EmulatedCluster, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    cluster.bind_claim("results", results)
    env = {
        "FLUXAUDIT_STORAGE_ROOT": str(results),
        "FLUXAUDIT_STORAGE_CLAIM": "results",
        **model_cache(cluster, tmp_path),
    }
    truncated = truncated_gguf(tiny_model, tmp_path / "model-cache" / "huggingface")
    broken = truncated.name
    quants = [{"label": q, "file": tiny_model.gguf_files[q]} for q in ("Q4_0", "Q5_K_S")]
    doc = audit_doc(tiny_model, quants=[*quants, {"label": "cut", "file": broken}], guidanceScales=[2, 4, 10, 20, 30])
    doc["metadata"] = {"name": "faults"}
    run_id = parse_document(doc).run_id()
    run = results / "audit" / NS / run_id  # results are kept apart by namespace
    # Aggregation will crash halfway: report.json cannot be written while this folder stands in its way.
    (run / "report.json").mkdir(parents=True)

    # Created while no operator runs: nothing happens until one starts.
    client.CustomObjectsApi(cluster.client()).create_namespaced_custom_object(*API, doc)
    assert not client.BatchV1Api(cluster.client()).list_namespaced_job(NS).items
    first = OperatorProcess(cluster, env, name="operator-1").start()
    try:
        # Q4_0's pod dies (SIGKILL) after its first cells: a counted retry that must resume.
        q4 = run / "partials" / "Q4_0.json"
        wait_for("Q4_0's first cell", lambda: cells_in(q4) >= 1, 120, interval=0.02)
        before = {
            c["image"]: (
                hashlib.sha256((results / c["image"]).read_bytes()).hexdigest(),
                (results / c["image"]).stat().st_mtime_ns,
            )
            for c in json.loads(q4.read_text())["cells"]
        }
        assert cluster.executor.kill(f"{NS}/faults-q4-0", signal.SIGKILL), "Q4_0 finished before the kill"
        # Q5_K_S's pod is evicted (DisruptionTarget, as on spot preemption): a free retry.
        wait_for("Q5_K_S's first cell", lambda: cells_in(run / "partials" / "Q5_K_S.json") >= 1, 120, interval=0.02)
        assert cluster.executor.kill(f"{NS}/faults-q5-k-s", signal.SIGTERM, disruption=True)
    finally:
        first.kill()  # mid-audit: groups are running, and one is being retried
    assert any(g["phase"] == "Running" for g in status(cluster, "faults")["groups"])
    second = OperatorProcess(cluster, env, name="operator-2").start()
    try:
        # Every group ends; the second operator starts the report and crashes on report.json.
        wait_for("REPORT.md from the second operator", lambda: (run / "REPORT.md").exists(), 240)
        wait_for(
            "the failed aggregation to be logged",
            lambda: "report.json" in second.logs() and "Is a directory" in second.logs(),
            30,
        )
    finally:
        second.kill()  # mid-aggregation
    assert not status(cluster, "faults").get("reportURL")
    (run / "report.json").rmdir()
    with OperatorProcess(cluster, env, name="operator-3"):
        final = wait_for("the audit to finish", lambda: finished(cluster, "faults"), 120)

    assert not cluster.executor.errors, cluster.executor.errors
    groups = {g["quant"]: g for g in final["groups"]}
    # The killed group resumed: all 5 cells once each, the images made before the kill untouched.
    partial = json.loads(q4.read_text())
    keys = [(c["guidance"], c["seed"], c["repeat"]) for c in partial["cells"]]
    assert len(keys) == len(set(keys)) == 5 and partial["status"] == "complete" and partial["attempts"] == 2
    for image, (digest, mtime) in before.items():
        assert hashlib.sha256((results / image).read_bytes()).hexdigest() == digest
        assert (results / image).stat().st_mtime_ns == mtime
    assert cluster.executor.pods_started[f"{NS}/faults-q4-0"] == 2 and job(cluster, "faults-q4-0").status.failed == 1
    # The preempted group was retried without spending its backoffLimit.
    assert cluster.executor.pods_started[f"{NS}/faults-q5-k-s"] == 2 and not job(cluster, "faults-q5-k-s").status.failed
    assert groups["Q4_0"]["phase"] == groups["Q5_K_S"]["phase"] == "Succeeded"
    # The truncated file failed its group only, once, naming the file, its sha256 and size.
    cut = groups["cut"]
    digest = hashlib.sha256(truncated.read_bytes()).hexdigest()
    assert cut["phase"] == "Failed" and cut["attempts"] == 1
    assert broken in cut["message"] and digest in cut["message"] and "4096 bytes" in cut["message"]
    # One Job per group, created once across three operators; one report, built by the third.
    creates = [s for s in cluster.api.served if s.verb == "create" and s.resource == "jobs"]
    assert len(creates) == 3
    assert (
        final["phase"] == "Failed" and "cut" in next(c for c in final["conditions"] if c["type"] == "Ready")["message"]
    )
    assert (run / "report.json").is_file() and json.loads((run / "report.json").read_text())["summary"][
        "recommendedQuant"
    ]
    assert "not a readable GGUF file" in (run / "REPORT.md").read_text()


@pytest.fixture
def gcs(tmp_path: Path) -> Iterator[tuple[Emulator, ServiceAccountKey, FirebaseStorage]]:
    """The GCS emulator, a service-account key, and Google's token endpoint stood in for."""
    port = free_port()
    key = make_key(token_uri=f"http://127.0.0.1:{port}/token")
    emulator = Emulator(tmp_path / "gcs")
    emulator.start(create_bucket=True)
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = emulator.host
    try:
        with TokenStandIn(key, port=port).serve():
            yield emulator, key, FirebaseStorage(BUCKET, credentials=key.credentials(), retry_deadline_seconds=30)
    finally:
        emulator.stop()
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


def bucket_install(
    cluster: EmulatedCluster, tmp_path: Path, key: ServiceAccountKey, emulator: Emulator, retry_seconds: int
) -> dict[str, str]:
    """Runners get their key from a Secret (FLUXAUDIT_FIREBASE_SECRET), the operator its own."""
    encoded = base64.b64encode(json.dumps(key.info).encode()).decode()
    cluster.add_secret(NS, "fluxaudit-firebase", {"credentials": encoded})
    node = {"STORAGE_EMULATOR_HOST": emulator.host, "FLUXAUDIT_STORAGE_RETRY_SECONDS": str(retry_seconds)}
    cluster.executor.base_env.update(node)
    return {
        **model_cache(cluster, tmp_path),
        **node,
        "FLUXAUDIT_FIREBASE_SECRET": "fluxaudit-firebase",
        "FIREBASE_CREDENTIALS": encoded,
        # the installation lets audits name this bucket (spec.storage.bucket); any other is refused
        "FLUXAUDIT_POLICY": json.dumps({"buckets": [BUCKET]}),
    }


def session(store: FirebaseStorage, tiny_model: Any, session_id: str) -> None:
    store.write_bytes(f"users/u1/sessions/{session_id}/original.jpg", tiny_model.image.read_bytes(), "image/png")
    store.write_bytes(f"users/u1/sessions/{session_id}/mask_auto.png", tiny_model.mask.read_bytes(), "image/png")


def bucket_doc(tiny_model: Any, name: str, session_id: str, **spec: Any) -> dict[str, Any]:
    quants = [{"label": q, "file": tiny_model.gguf_files[q]} for q in ("Q4_0", "Q8_0")]
    doc = audit_doc(tiny_model, quants=quants, storage={"bucket": BUCKET}, **spec)
    doc["spec"]["input"] = {"userId": "u1", "sessionId": session_id}
    doc["metadata"] = {"name": name}
    return doc


def test_storage_outage_for_a_while_and_no_secret_in_any_log_or_event(
    tiny_model, cluster: EmulatedCluster, tmp_path: Path, gcs: tuple[Emulator, ServiceAccountKey, FirebaseStorage]
) -> None:
    emulator, key, store = gcs
    session(store, tiny_model, "s1")
    env = bucket_install(cluster, tmp_path, key, emulator, retry_seconds=90)
    doc = bucket_doc(tiny_model, "outage", "s1", guidanceScales=[2, 10, 30])
    run_id = parse_document(doc).run_id()
    with OperatorProcess(cluster, env) as operator:
        client.CustomObjectsApi(cluster.client()).create_namespaced_custom_object(*API, doc)
        wait_for(
            "a first cell in the bucket",
            lambda: (
                len((store.read_json_or_none(f"audit/{NS}/{run_id}/partials/Q4_0.json") or {}).get("cells") or []) >= 1
            ),
            120,
            interval=0.05,
        )
        emulator.stop()
        time.sleep(4)  # the outage: every write and read in this window fails and is retried
        emulator.start()
        final = wait_for("the audit to finish", lambda: finished(cluster, "outage"), 240)
        core = client.CoreV1Api(cluster.client())
        events = wait_for(
            "every event, the last one included",
            lambda: (
                (items := core.list_namespaced_event(NS).items)
                and any(e.reason == "AuditSucceeded" for e in items)
                and items
            ),
            20,
        )
        operator_log = operator.logs()
    assert final["phase"] == "Succeeded", json.dumps(final, indent=1)
    assert sorted(cluster.executor.pods_started.values()) == [1, 1]  # retried inside the pods, no restart
    # The report link is a real V4 signature by the operator's key, valid for the spec's 72 h.
    params = verify_v4_url(final["reportURL"], key.public)
    assert params["X-Goog-Expires"] == str(72 * 3600)
    expires = datetime.fromisoformat(final["reportURLExpiresAt"].replace("Z", "+00:00"))
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=72))) < timedelta(minutes=5)
    assert final["reportPath"] == f"gs://{BUCKET}/audit/{NS}/{run_id}/REPORT.md"
    assert "Q8\\_0" in store.read_bytes(f"audit/{NS}/{run_id}/REPORT.md").decode()
    assert urlparse(final["reportURL"]).path == f"/{BUCKET}/audit/{NS}/{run_id}/report.html"  # the page, signed
    # No credential, token or signature anywhere a cluster user can read logs or Events.
    texts = [operator_log] + [p.read_text(errors="replace") for p in (cluster.workdir / "pods").glob("*.log")]
    texts += [f"{e.reason} {e.message}" for e in events]
    secrets = [
        key.info["private_key"].splitlines()[1],
        base64.b64encode(json.dumps(key.info).encode()).decode()[:40],
        "emulated-access-token",
        dict(parse_qsl(urlparse(final["reportURL"]).query))["X-Goog-Signature"],
    ]
    assert len(texts) >= 3 and events
    for secret in secrets:
        assert not [t[:200] for t in texts if secret in t], f"a secret leaked: {secret[:12]}…"


def test_missing_session_assets_fail_the_audit_naming_the_path(
    tiny_model, cluster: EmulatedCluster, tmp_path: Path, gcs: tuple[Emulator, ServiceAccountKey, FirebaseStorage]
) -> None:
    emulator, key, _ = gcs
    env = bucket_install(cluster, tmp_path, key, emulator, retry_seconds=10)
    doc = bucket_doc(tiny_model, "missing", "no-such-session")
    with OperatorProcess(cluster, env):
        client.CustomObjectsApi(cluster.client()).create_namespaced_custom_object(*API, doc)
        final = wait_for("the audit to fail", lambda: finished(cluster, "missing"), 180)
    assert final["phase"] == "Failed"
    for group in final["groups"]:
        assert group["phase"] == "Failed" and group["attempts"] == 1  # bad input: FailJob, no retries
        assert "users/u1/sessions/no-such-session/original.jpg" in group["message"], group["message"]


def test_storage_down_for_good_is_a_clear_stalled_condition_and_corrupts_nothing(
    tiny_model, cluster: EmulatedCluster, tmp_path: Path, gcs: tuple[Emulator, ServiceAccountKey, FirebaseStorage]
) -> None:
    emulator, key, store = gcs
    session(store, tiny_model, "s2")
    original = store.read_bytes("users/u1/sessions/s2/original.jpg")
    env = bucket_install(cluster, tmp_path, key, emulator, retry_seconds=2)
    doc = bucket_doc(tiny_model, "down", "s2", runner={"backoffLimit": 0})
    emulator.stop()
    with OperatorProcess(cluster, env):
        client.CustomObjectsApi(cluster.client()).create_namespaced_custom_object(*API, doc)

        def stalled_after_groups_ended() -> dict[str, Any] | None:
            s = status(cluster, "down")
            groups_ended = s.get("groups") and all(g["phase"] == "Failed" for g in s["groups"])
            cond = next((c for c in s.get("conditions") or [] if c["type"] == "Stalled"), {})
            return cond if groups_ended and cond.get("reason") == "StorageUnavailable" else None

        stalled = wait_for("Stalled: StorageUnavailable", stalled_after_groups_ended, 180)
        assert stalled["status"] == "True" and f"gs://{BUCKET}/audit/{NS}/" in stalled["message"]
        assert "still failing" in stalled["message"]
        # Storage comes back: nothing was corrupted, and the operator finishes the job it could not do.
        emulator.start()
        final = wait_for("the report of the failed groups", lambda: finished(cluster, "down"), 120)
    assert store.read_bytes("users/u1/sessions/s2/original.jpg") == original
    assert final["phase"] == "Failed" and all(g["phase"] == "Failed" for g in final["groups"])
    assert next(c for c in final["conditions"] if c["type"] == "Stalled")["reason"] == "GroupsFailed"
    shutil.rmtree(tmp_path / "gcs", ignore_errors=True)
