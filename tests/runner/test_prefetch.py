"""Local mode reads each weights file once for its hash: the next group's files (its GGUF file, or the bf16
reference's shards) are fetched and hashed while this group sweeps, and the group finds the digests (tiny
model, CPU)."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from fluxaudit.spec import parse_document
from fluxaudit.storage import LocalStorage
from fluxaudit_runner import loading
from fluxaudit_runner.local import run_audit
from tests.support.helpers import audit_doc

pytestmark = pytest.mark.slow


@pytest.fixture
def hashed(monkeypatch, caplog) -> list[int]:
    """One entry per sha256 started (a file read for its digest), from a fresh digest memo; runner events kept."""
    started: list[int] = []

    def counting_sha256(*args: object) -> object:
        started.append(1)
        return hashlib.sha256(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(loading, "_DIGESTS", {})
    monkeypatch.setattr(loading, "hashlib", SimpleNamespace(sha256=counting_sha256))
    caplog.set_level(logging.INFO, logger="fluxaudit.runner")
    return started


def test_each_gguf_file_is_hashed_once_and_the_next_one_ahead(tiny_model, tmp_path: Path, hashed, caplog) -> None:
    audit = parse_document(audit_doc(tiny_model))
    outcome = run_audit(audit, LocalStorage(tmp_path), report=False)
    assert outcome.ok, outcome.failures
    assert len(hashed) == 3  # one read per file: 5 if the groups hashed again what was fetched ahead
    fetched = [r.fields["group"] for r in caplog.records if getattr(r, "event", None) == "prefetch.done"]
    assert fetched == ["Q5_K_S", "Q8_0"]  # the first group's file is its own; each next one is fetched ahead
    digests = {label: p.quant.sha256 for label, p in outcome.partials.items() if p and p.quant}
    for label, digest in digests.items():
        path = next(Path(tiny_model.hub_cache).rglob(tiny_model.gguf_files[label]))
        assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_bf16_references_shards_are_hashed_ahead_too(tiny_model, tmp_path: Path, hashed, caplog) -> None:
    doc = audit_doc(tiny_model, quants=[{"label": "Q4_0", "file": tiny_model.gguf_files["Q4_0"]}], reference="bf16",
                    guidanceScales=[2])  # fmt: skip
    outcome = run_audit(parse_document(doc), LocalStorage(tmp_path), report=False)
    assert outcome.ok, outcome.failures
    fetched = [r.fields["group"] for r in caplog.records if getattr(r, "event", None) == "prefetch.done"]
    assert fetched == ["bf16"]
    shards = sorted(Path(tiny_model.hub_cache).rglob("transformer/*.safetensors"))
    assert shards
    # Q4_0's file, each shard once, and the digest of digests: more if the group hashed the shards again
    assert len(hashed) == 1 + len(shards) + (len(shards) > 1)
    bf16 = outcome.partials["bf16"]
    assert bf16 is not None and bf16.quant is not None and bf16.load is not None
    assert bf16.quant.sha256 == (
        hashlib.sha256(shards[0].read_bytes()).hexdigest()
        if len(shards) == 1
        else hashlib.sha256("".join(hashlib.sha256(s.read_bytes()).hexdigest() for s in shards).encode()).hexdigest()
    )


def test_a_rewritten_file_is_hashed_again(tmp_path: Path) -> None:
    f = tmp_path / "x.gguf"
    f.write_bytes(b"a" * 1000)
    first = loading.sha256_file(f)
    f.write_bytes(b"b" * 1000)  # same size, new contents and modification time
    os.utime(f, ns=(1, 1))
    assert loading.sha256_file(f) != first == hashlib.sha256(b"a" * 1000).hexdigest()
