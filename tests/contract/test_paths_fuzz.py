"""Fuzzed: no label, run id or prefix can make a storage path leave the run folder."""

from __future__ import annotations

import posixpath

from hypothesis import given, settings
from hypothesis import strategies as st

from fluxaudit.layout import RunLayout, UnsafePathError, check_relative_path
from fluxaudit.spec import SAFE_SEGMENT, SpecError, parse_document

ANY_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Z", "Cc"]) | st.sampled_from(list("./\\~$")),
    max_size=40,
)


def _inside(path: str, root: str) -> bool:
    normal = posixpath.normpath("/" + path)
    return normal.startswith("/" + root + "/") and normal == "/" + path


@settings(max_examples=400, deadline=None)
@given(prefix=ANY_TEXT, run_id=ANY_TEXT, label=ANY_TEXT, guidance=st.floats(0.01, 100), seed=st.integers(0, 2**40))
def test_layout_paths_stay_inside_the_run(prefix: str, run_id: str, label: str, guidance: float, seed: int) -> None:
    try:
        layout = RunLayout(prefix, run_id)
        paths = [
            layout.image(label, guidance, seed, several_seeds=True),
            layout.latents(label, guidance, seed),
            layout.partial(label),
            layout.report_md,
        ]
    except UnsafePathError:
        return
    for path in paths:
        assert _inside(path, layout.root), path


@settings(max_examples=300, deadline=None)
@given(path=ANY_TEXT)
def test_checked_paths_are_normal_and_relative(path: str) -> None:
    try:
        checked = check_relative_path(path)
    except UnsafePathError:
        return
    assert not checked.startswith("/") and posixpath.normpath(checked) == checked and ".." not in checked.split("/")


@settings(max_examples=200, deadline=None)
@given(label=ANY_TEXT)
def test_spec_labels_are_safe_segments_or_rejected(label: str) -> None:
    doc = {
        "apiVersion": "fluxaudit.dev/v1alpha1",
        "kind": "FluxAudit",
        "metadata": {"name": "f"},
        "spec": {"input": {"userId": "u", "sessionId": "s"}, "quants": [{"label": label, "file": "a.gguf"}]},
    }
    try:
        audit = parse_document(doc)
    except SpecError as exc:
        assert any(p.startswith("spec.quants") for p, _ in exc.errors)
        return
    layout = RunLayout(audit.spec.storage.prefix, audit.run_id())
    assert _inside(layout.partial(label), layout.root), SAFE_SEGMENT
