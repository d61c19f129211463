"""Prompt embeddings encoded once per audit and stored with the run: later groups read them and load no text
encoder, and what they compute does not change (tiny model, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluxaudit.layout import RunLayout
from fluxaudit.spec import parse_document
from fluxaudit.storage import LocalStorage
from fluxaudit_runner import prompt_cache
from fluxaudit_runner.group import run_group
from tests.support.helpers import audit_doc

pytestmark = pytest.mark.slow


def test_later_groups_read_the_stored_embeddings_and_compute_the_same_images(tiny_model, tmp_path: Path) -> None:
    audit = parse_document(audit_doc(tiny_model))
    layout = RunLayout(audit.spec.storage.prefix, audit.run_id())
    prompt = audit.spec.first_input.prompt
    stored_at = layout.prompt_embedding(prompt_cache.key(audit.spec, prompt))

    alone = LocalStorage(tmp_path / "alone")  # Q8_0 on its own encodes the prompt (and stores it)
    by_itself = run_group(audit, "Q8_0", alone)
    assert by_itself.load is not None and "freed after encoding" in by_itself.load.memory_mode
    assert alone.exists(stored_at)

    shared = LocalStorage(tmp_path / "shared")  # Q4_0 first, then Q8_0 reads what Q4_0 stored
    first = run_group(audit, "Q4_0", shared)
    assert first.load is not None and "freed after encoding" in first.load.memory_mode
    second = run_group(audit, "Q8_0", shared)
    assert second.load is not None and second.load.memory_mode.endswith(
        "prompt embeddings read from the run, no text encoder loaded"
    )
    assert [c.image_sha256 for c in second.cells] == [c.image_sha256 for c in by_itself.cells]

    # An unreadable stored file is encoded again (and rewritten), never trusted.
    broken = LocalStorage(tmp_path / "broken")
    broken.write_bytes(stored_at, b"not safetensors", "application/octet-stream")
    again = run_group(audit, "Q8_0", broken)
    assert again.load is not None and "freed after encoding" in again.load.memory_mode
    assert [c.image_sha256 for c in again.cells] == [c.image_sha256 for c in by_itself.cells]
    assert broken.read_bytes(stored_at) == alone.read_bytes(stored_at)


def test_the_key_names_what_the_embedding_depends_on(tiny_model) -> None:
    spec = parse_document(audit_doc(tiny_model)).spec
    k = prompt_cache.key(spec, "a")
    assert k != prompt_cache.key(spec, "b")
    assert k != prompt_cache.key(spec.model_copy(update={"max_sequence_length": 64}), "a")
    assert k != prompt_cache.key(spec.model_copy(update={"dtype": "float32"}), "a")
    assert k == prompt_cache.key(spec.model_copy(update={"steps": 7}), "a")  # steps do not change the text
