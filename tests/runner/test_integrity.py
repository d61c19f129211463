"""Integrity of a run folder (#15), as a user meets it: one spec per run id, results bound to the input
bytes, foreign and corrupt partials refused by name (exit 3), set aside only when asked, one writer at a
time, results readable as the umask says, and GGUF failures that name their file.  Each case checks that
nothing already stored changed (by hash)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from fluxaudit.layout import RunLayout
from fluxaudit.spec import parse_document
from fluxaudit.storage import LocalStorage, RunLocked
from tests.support.helpers import audit_doc, run_cli

pytestmark = pytest.mark.slow


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")}  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One finished one-quant audit, copied fresh into each test."""
    root = tmp_path_factory.mktemp("integrity")
    doc = audit_doc(tiny_model, quants=[{"label": "Q8_0", "file": tiny_model.gguf_files["Q8_0"]}], runId="r1")
    (root / "a.yaml").write_text(yaml.safe_dump(doc))
    res = run_cli("run", str(root / "a.yaml"), "--out", str(root / "out"))
    assert res.returncode == 0, res.stderr[-2000:]
    return root, doc


@pytest.fixture
def run(finished_run: tuple[Path, dict], tmp_path: Path) -> tuple[Path, dict]:
    root, doc = finished_run
    shutil.copytree(root / "out", tmp_path / "out")
    return tmp_path, json.loads(json.dumps(doc))


def cli(tmp: Path, doc: dict, *extra: str):
    (tmp / "a.yaml").write_text(yaml.safe_dump(doc))
    return run_cli("run", str(tmp / "a.yaml"), "--out", str(tmp / "out"), *extra)


def test_another_spec_under_the_same_run_id_is_refused_and_changes_nothing(run: tuple[Path, dict]) -> None:
    tmp, doc = run
    before = snapshot(tmp / "out")
    doc["spec"]["guidanceScales"] = [4, 10]  # not in the fingerprint: only the stored spec can tell
    res = cli(tmp, doc)
    assert res.returncode == 3, res.stderr[-2000:]
    assert "run r1" in res.stderr and "belongs to another spec" in res.stderr and "spec.guidanceScales" in res.stderr
    assert snapshot(tmp / "out") == before


def test_changed_input_bytes_under_the_same_uri_are_refused(run: tuple[Path, dict], tiny_model) -> None:
    tmp, doc = run
    image = tmp / "image.png"
    shutil.copy(tiny_model.image, image)
    doc["spec"]["input"]["image"] = image.as_uri()
    doc["spec"]["runId"] = "r2"
    assert cli(tmp, doc, "--quant", "Q8_0").returncode == 0
    layout = RunLayout("audit", "r2")
    partial = tmp / "out" / layout.partial("Q8_0")
    data = json.loads(partial.read_text())
    data["cells"] = data["cells"][:1]  # an interrupted group, to be resumed
    data["status"] = "running"
    partial.write_text(json.dumps(data))
    from PIL import Image

    Image.open(image).rotate(90).save(image)  # same URI, other bytes
    before = snapshot(tmp / "out")
    res = cli(tmp, doc, "--quant", "Q8_0")
    assert res.returncode == 3 and "computed from other input bytes" in res.stderr, res.stderr[-2000:]
    assert snapshot(tmp / "out") == before


@pytest.mark.parametrize(
    ("content", "why"),
    [(b'{"schemaVersion": 2, "runId"', "not JSON"), (b"{}", "schemaVersion None"), (b"[1, 2]", "a JSON list"),
     (b'{"schemaVersion": 99}', "schemaVersion 99")],
)  # fmt: skip
def test_a_corrupt_partial_is_a_permanent_error_naming_it_and_set_aside_only_when_asked(
    run: tuple[Path, dict], content: bytes, why: str
) -> None:
    tmp, doc = run
    partial = tmp / "out" / RunLayout("audit", "r1").partial("Q8_0")
    partial.write_bytes(content)
    before = snapshot(tmp / "out")
    res = cli(tmp, doc)
    assert res.returncode == 3, res.stderr[-2000:]
    assert "partials/Q8_0.json is not a partial FluxAudit can read" in res.stderr and why in res.stderr
    assert "--set-aside-corrupt" in res.stderr and "Traceback" not in res.stderr
    assert snapshot(tmp / "out") == before
    report = run_cli("report", str(tmp / "out"))
    assert report.returncode == 3 and "Q8_0.json is not a partial" in report.stderr and "Traceback" not in report.stderr
    res = cli(tmp, doc, "--set-aside-corrupt")
    assert res.returncode == 0, res.stderr[-2000:]
    (aside,) = partial.parent.glob("Q8_0.corrupt-*.json")
    assert aside.read_bytes() == content  # kept, byte for byte: never a silent delete
    assert json.loads(partial.read_text())["status"] == "complete"


def test_report_refuses_partials_of_another_spec(run: tuple[Path, dict]) -> None:
    tmp, _ = run
    partial = tmp / "out" / RunLayout("audit", "r1").partial("Q8_0")
    data = json.loads(partial.read_text())
    data["fingerprint"] = "0" * 16
    partial.write_text(json.dumps(data))
    res = run_cli("report", str(tmp / "out"))
    assert res.returncode == 3 and "partials/Q8_0.json was written by a different spec" in res.stderr


def test_one_writer_per_run_folder(run: tuple[Path, dict]) -> None:
    tmp, doc = run
    storage = LocalStorage(tmp / "out")
    with storage.writer_lock("audit/r1"):
        res = cli(tmp, doc)
        assert res.returncode == 1 and "is being written by pid" in res.stderr, res.stderr[-2000:]
        with pytest.raises(RunLocked), storage.writer_lock("audit/r1"):
            pass
    assert cli(tmp, doc).returncode == 0  # released: the next run goes ahead (and finds it finished)


def test_local_results_are_readable_as_the_umask_says(run: tuple[Path, dict]) -> None:
    tmp, _ = run
    old = os.umask(0o022)
    try:
        storage = LocalStorage(tmp / "o2")
        storage.write_bytes("audit/x/a.png", b"x")
        assert (tmp / "o2" / "audit/x/a.png").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)
    mode = (tmp / "out" / "audit/r1/REPORT.md").stat().st_mode & 0o777
    assert mode & 0o044, oct(mode)  # group and others may read what the run wrote (umask 022 in CI)


def test_gguf_failures_name_the_file_and_are_permanent(tiny_model, tmp_path: Path) -> None:
    from fluxaudit_runner.tiny.hubcache import repo_cache_dir

    doc = audit_doc(tiny_model, quants=[{"label": "Q9", "file": "flux1-fill-tiny-Q9.gguf"}])
    res = cli(tmp_path, doc)
    assert (
        res.returncode == 3
        and "quants[Q9].file flux1-fill-tiny-Q9.gguf" in res.stderr
        and "Traceback" not in res.stderr
    )
    # junk tensors: a copy of the cache with one GGUF file's tensor data overwritten
    cache = tmp_path / "hf-home"
    shutil.copytree(tiny_model.hf_home, cache, symlinks=False)
    snap = next((repo_cache_dir(cache / "hub", tiny_model.gguf_repo) / "snapshots").iterdir())
    target = snap / tiny_model.gguf_files["Q4_0"]
    data = bytearray(target.read_bytes())
    data[200:4000] = os.urandom(3800)  # the header's tensor infos: junk shapes and offsets
    target.unlink()
    target.write_bytes(bytes(data))
    doc = audit_doc(tiny_model, quants=[{"label": "Q4_0", "file": tiny_model.gguf_files["Q4_0"]}])
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(doc))
    res = run_cli("run", str(tmp_path / "a.yaml"), "--out", str(tmp_path / "o2"), env={"HF_HOME": str(cache)})
    assert res.returncode == 3, res.stderr[-2000:]
    assert "flux1-fill-tiny-Q4_0.gguf" in res.stderr and "Traceback" not in res.stderr
    assert parse_document(doc).spec.quants[0].file in res.stderr
