from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from fluxaudit.contract import ExitCode
from fluxaudit.spec import DEFAULT_BASE_REPO, DEFAULT_GGUF_REPO, DEFAULT_PROMPT, SpecError, load_file, parse_document
from fluxaudit_cli import main

BASE: dict[str, Any] = {
    "apiVersion": "fluxaudit.dev/v1alpha1",
    "kind": "FluxAudit",
    "metadata": {"name": "baseline"},
    "spec": {"input": {"userId": "u1", "sessionId": "D1A406F5"}},
}


def doc(**spec: Any) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    d["spec"].update(spec)
    return d


def errors_of(d: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as exc:
        parse_document(d)
    return exc.value.errors


def test_defaults_match_the_original_audit() -> None:
    s = parse_document(BASE).spec
    assert [q.label for q in s.quants] == ["Q4_0", "Q5_K_S", "Q8_0"]
    assert [q.file for q in s.quants] == [f"flux1-fill-dev-{q}.gguf" for q in ("Q4_0", "Q5_K_S", "Q8_0")]
    assert s.guidance_scales == (2, 4, 10, 20, 30)
    assert s.model.gguf_repo == DEFAULT_GGUF_REPO and s.model.base_repo == DEFAULT_BASE_REPO
    assert s.steps == 28 and s.input.prompt == DEFAULT_PROMPT and s.dtype == "bfloat16"
    assert s.input.session_paths() == (
        "users/u1/sessions/D1A406F5/original.jpg",
        "users/u1/sessions/D1A406F5/mask_auto.png",
    )
    assert s.runner.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}


def test_run_id_is_stable_and_explicit_wins() -> None:
    a, b = parse_document(BASE), parse_document(copy.deepcopy(BASE))
    assert a.run_id() == b.run_id() and a.run_id().startswith("baseline-")
    assert parse_document(doc(steps=4)).run_id() != a.run_id()
    assert parse_document(doc(runId="r1")).run_id() == "r1"


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"bogus": 1}, "spec.bogus", "unknown field"),
        ({"quants": []}, "spec.quants", "must not be empty"),
        ({"guidanceScales": []}, "spec.guidanceScales", "must not be empty"),
        ({"seeds": []}, "spec.seeds", "must not be empty"),
        ({"guidanceScales": [0]}, "spec.guidanceScales", "> 0 and <= 100"),
        ({"guidanceScales": [-2]}, "spec.guidanceScales", "> 0 and <= 100"),
        ({"guidanceScales": [100.5]}, "spec.guidanceScales", "> 0 and <= 100"),
        ({"guidanceScales": [2, 2]}, "spec.guidanceScales", "unique"),
        ({"steps": 0}, "spec.steps", "greater than or equal to 1"),
        ({"repeats": 0}, "spec.repeats", "greater than or equal to 1"),
        (
            {"quants": [{"label": "Q4", "file": "a.gguf"}, {"label": "Q4", "file": "b.gguf"}]},
            "spec.quants",
            "duplicate",
        ),
        ({"quants": [{"label": "../x", "file": "a.gguf"}]}, "spec.quants[0].label", "does not match"),
        ({"quants": [{"label": "a/b", "file": "a.gguf"}]}, "spec.quants[0].label", "does not match"),
        ({"quants": [{"label": "", "file": "a.gguf"}]}, "spec.quants[0].label", "does not match"),
        ({"quants": [{"label": "Q4 0", "file": "a.gguf"}]}, "spec.quants[0].label", "does not match"),
        ({"quants": [{"label": "Q4", "file": "../a.gguf"}]}, "spec.quants[0].file", "does not match"),
        ({"quants": [{"label": "Q4", "file": "a.safetensors"}]}, "spec.quants[0].file", "does not match"),
        ({"quants": [{"label": "Q4", "file": "a.gguf", "extra": 1}]}, "spec.quants[0].extra", "unknown field"),
        ({"reference": "Q2_K"}, "spec", "reference 'Q2_K' is not one of the quants"),
        ({"compileCheck": {"quant": "nope"}}, "spec", "compileCheck.quant 'nope'"),
        ({"storage": {"signedUrlHours": 169}}, "spec.storage.signedUrlHours", "less than or equal to 168"),
        ({"runId": "Has_Upper"}, "spec.runId", "does not match"),
        ({"dtype": "int8"}, "spec.dtype", "bfloat16"),
        ({"input": {"userId": "u1"}}, "spec.input", "userId and sessionId go together"),
        ({"input": {"image": "file:///a.png"}}, "spec.input", "image and mask go together"),
        ({"input": {"image": "http://x/a.png", "mask": "file:///m.png"}}, "spec.input.image", "does not match"),
        (
            {"input": {"userId": "u", "sessionId": "s", "image": "file:///a", "mask": "file:///b"}},
            "spec.input",
            "not both",
        ),
        ({"input": {}}, "spec.input", "set userId+sessionId"),
        (
            {"input": {"userId": "u", "sessionId": "s", "imageTemplate": "../{userId}.jpg"}},
            "spec.input.imageTemplate",
            "'..'",
        ),
        (
            {"input": {"userId": "u", "sessionId": "s", "maskTemplate": "{user}/m.png"}},
            "spec.input.maskTemplate",
            "unknown placeholder",
        ),
        ({"quants": [{"label": f"Q{i}", "file": f"{i}.gguf"} for i in range(33)]}, "spec.quants", "at most 32"),
        ({"inputs": [{"userId": "u", "sessionId": "s"}]}, "spec", "set input (one image and mask) or inputs"),
        ({"input": None}, "spec", "set input (userId+sessionId, or image+mask URIs) or inputs"),
        ({"input": None, "inputs": []}, "spec.inputs", "must not be empty"),
        (
            {"input": None, "inputs": [{"userId": "a", "sessionId": "s1"}, {"userId": "b", "sessionId": "s1"}]},
            "spec",
            "inputs[0] and inputs[1] are both named 's1' (their folders in the run): set inputs[1].name",
        ),
        ({"input": None, "inputs": [{"userId": "u", "sessionId": "s", "name": "partials"}]}, "spec.inputs[0].name",
         "a folder the run uses itself"),
        ({"input": None, "inputs": [{"userId": "u", "sessionId": "s", "name": "a.b"}]}, "spec.inputs[0].name",
         "does not match"),
        ({"input": None, "inputs": [{"userId": "u"}]}, "spec.inputs[0]", "userId and sessionId go together"),
        ({"input": {"userId": "u", "sessionId": "s", "name": "x"}}, "spec", "input.name names an input of spec.inputs"),
    ],
)  # fmt: skip
def test_rejections_name_the_field(spec: dict[str, Any], field: str, words: str) -> None:
    errors = errors_of(doc(**spec))
    assert any(path == field and words in msg for path, msg in errors), errors


def test_every_error_is_reported_at_once() -> None:
    errors = errors_of(doc(steps=0, guidanceScales=[], bogus=True))
    assert {p for p, _ in errors} >= {"spec.steps", "spec.guidanceScales", "spec.bogus"}


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(apiVersion="fluxaudit.dev/v1"), "apiVersion"),
        (lambda d: d.update(kind="Audit"), "kind"),
        (lambda d: d["metadata"].update(name="Bad_Name"), "metadata.name"),
        (lambda d: d.pop("spec"), "spec"),
    ],
)
def test_envelope_is_checked(mutate: Any, field: str) -> None:
    d = copy.deepcopy(BASE)
    mutate(d)
    assert field in [p for p, _ in errors_of(d)]


def test_yaml_file_errors(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text("spec: [unclosed")
    with pytest.raises(SpecError) as exc:
        load_file(f)
    assert exc.value.errors[0][0] == "(yaml)"
    f.write_text(yaml.safe_dump(BASE) + "---\n" + yaml.safe_dump(BASE))
    with pytest.raises(SpecError, match="found 2"):
        load_file(f)
    with pytest.raises(SpecError, match="cannot read"):
        load_file(tmp_path / "missing.yaml")


def test_cli_validate_exit_codes(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(BASE))
    bad.write_text(yaml.safe_dump(doc(steps=0, quants=[])))
    runner = CliRunner()
    ok = runner.invoke(main, ["validate", str(good)])
    assert ok.exit_code == 0, ok.output
    assert "3 quants × 1 input(s) × 5 guidance" in ok.output
    res = runner.invoke(main, ["validate", str(bad)])
    assert res.exit_code == ExitCode.INVALID_SPEC
    assert "spec.steps" in res.output and "spec.quants" in res.output
    # Patterns are printed whole (no bracket eaten as terminal markup).
    bad.write_text(yaml.safe_dump(doc(storage={"bucket": "BAD"})))
    res = runner.invoke(main, ["validate", str(bad)])
    assert "^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$" in res.output


def test_spec_from_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("FLUXAUDIT_SPEC", json.dumps(BASE))
    assert load_file("env:FLUXAUDIT_SPEC").metadata.name == "baseline"
    monkeypatch.delenv("FLUXAUDIT_SPEC")
    with pytest.raises(SpecError, match="FLUXAUDIT_SPEC is not set"):
        load_file("env:FLUXAUDIT_SPEC")


def test_inputs_are_named_by_their_session_or_file_and_counted_in_every_group() -> None:
    inputs = [
        {"userId": "u1", "sessionId": "D1A406F5"},
        {"image": "gs://b/photos/kitchen floor.v2.jpg", "mask": "gs://b/m.png", "prompt": "bare tiles"},
        {"image": "file:///data/inputs.png", "mask": "file:///data/m.png"},
        {"image": "file:///data/x.png", "mask": "file:///data/m.png", "name": "mine"},
    ]
    s = parse_document(doc(input=None, inputs=inputs, seeds=[0, 1])).spec
    assert [name for name, _ in s.input_items()] == ["D1A406F5", "kitchen-floor-v2", "input-3", "mine"]
    assert s.first_input.session_id == "D1A406F5" and s.input_items()[1][1].prompt == "bare tiles"
    assert s.input_items()[0][1].prompt == DEFAULT_PROMPT
    assert s.cells_for("Q4_0", gpu=False) == 4 * 5 * 2


def test_one_input_hashes_as_before_inputs_existed() -> None:
    """Run ids of one-input audits stay what they were (a rerun finds and resumes its run): values computed before spec.inputs existed."""
    assert parse_document(doc(input={"userId": "u1", "sessionId": "s1"})).spec.fingerprint() == "f791aa6bf79a4efa"
    two_seeds = doc(input={"image": "file:///a.png", "mask": "file:///m.png", "prompt": "x"}, seeds=[0, 1])
    assert parse_document(two_seeds).spec.fingerprint() == "5d320f5f53b33c18"
