"""``spec.inputs``: many inputs in one audit on the tiny model (CPU) — cells input × quant × guidance × seed,
one folder per input, each input's own prompt, resuming cell by cell, the report keyed by input."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageOps

from fluxaudit.inputs import InputError
from fluxaudit.layout import RunLayout
from fluxaudit.results import Partial
from fluxaudit.spec import parse_document
from fluxaudit.storage import LocalStorage
from fluxaudit_runner.group import cell_plan, run_group
from fluxaudit_runner.local import run_audit
from tests.support.helpers import audit_doc, run_cli

pytestmark = pytest.mark.slow

OTHER_PROMPT = "a wooden floor, nothing on it"


def three_inputs(tiny_model: Any, folder: Path) -> list[dict[str, Any]]:
    """The tiny model's input, its mirror image (own prompt), and a wider crop of another size."""
    folder.mkdir(parents=True, exist_ok=True)
    image, mask = Image.open(tiny_model.image), Image.open(tiny_model.mask)
    ImageOps.mirror(image).save(folder / "mirrored.png")
    ImageOps.mirror(mask).save(folder / "mirrored_mask.png")
    wide = (0, 0, image.width, image.height * 3 // 4)
    image.crop(wide).save(folder / "wide.png")
    mask.crop(wide).save(folder / "wide_mask.png")
    return [
        {"image": tiny_model.image.resolve().as_uri(), "mask": tiny_model.mask.resolve().as_uri(), "name": "original"},
        {"image": (folder / "mirrored.png").as_uri(), "mask": (folder / "mirrored_mask.png").as_uri(),
         "prompt": OTHER_PROMPT},
        {"image": (folder / "wide.png").as_uri(), "mask": (folder / "wide_mask.png").as_uri()},
    ]  # fmt: skip


def multi_doc(tiny_model: Any, folder: Path, **overrides: Any) -> dict[str, Any]:
    quants = [{"label": q, "file": tiny_model.gguf_files[q]} for q in ("Q4_0", "Q8_0")]
    doc = audit_doc(tiny_model, **{"quants": quants, "seeds": [0, 1], **overrides})
    doc["spec"].pop("input")
    doc["spec"]["inputs"] = three_inputs(tiny_model, folder)
    return doc


class Stop(Exception):
    """Stands in for a preemption after a given number of cells."""


def test_three_inputs_two_seeds_resume_and_report(tiny_model, tmp_path: Path) -> None:
    audit = parse_document(multi_doc(tiny_model, tmp_path / "in"))
    assert [name for name, _ in audit.spec.input_items()] == ["original", "mirrored", "wide"]
    storage = LocalStorage(tmp_path / "out")
    layout = RunLayout(audit.spec.storage.prefix, audit.run_id())
    plan = cell_plan(audit, "Q4_0", gpu=False)
    assert len(plan) == audit.spec.cells_for("Q4_0", gpu=False) == 3 * 2 * 2

    # Q4_0 is stopped after 5 cells (mid-way through the second input), then resumed.
    def stop_after_five(p: Partial) -> None:
        if len(p.cells) == 5:
            raise Stop

    with pytest.raises(Stop):
        run_group(audit, "Q4_0", storage, progress=stop_after_five)
    first = Partial.from_json(storage.read_json(layout.partial("Q4_0")))
    assert [c.key for c in first.cells] == plan[:5]
    outcome = run_audit(audit, storage)
    assert outcome.ok, outcome.failures

    p = Partial.from_json(storage.read_json(layout.partial("Q4_0")))
    assert p.status == "complete" and [c.key for c in p.cells] == plan  # every cell once, in plan order
    assert [c.finished_at for c in p.cells[:5]] == [c.finished_at for c in first.cells]  # not redone
    assert p.attempts == 2 and p.cells_total == 12
    records = {r.name: r for r in p.inputs}
    assert list(records) == ["original", "mirrored", "wide"]
    assert records["mirrored"].prompt == OTHER_PROMPT and records["original"].prompt != OTHER_PROMPT
    assert (records["wide"].height, records["wide"].width) != (records["original"].height, records["original"].width)

    # One folder per input: the inputs as the pipeline saw them, every cell's image and latents, a contact sheet.
    for name in records:
        folder = layout.of_input(name)
        assert storage.exists(folder.input_image) and storage.exists(folder.input_mask)
        assert storage.exists(folder.contact_sheet)
        for c in (c for c in p.cells if c.input == name and c.repeat == 0):
            assert c.image == folder.image("Q4_0", c.guidance, c.seed, several_seeds=True) and storage.exists(c.image)
            assert c.latents is not None and storage.exists(c.latents)
    wide = Image.open(io.BytesIO(storage.read_bytes(layout.of_input("wide").image("Q8_0", 2, 1, True))))
    assert wide.size == (records["wide"].width, records["wide"].height)

    doc = outcome.report.json
    assert doc["schemaVersion"] == 3 and {c["input"] for c in doc["cells"]} == set(records)
    assert len(doc["quality"]["cells"]) == 24  # 2 quants × 3 inputs × 2 guidance × 2 seeds
    # Paired like with like: Q4_0 against the reference (Q8_0) on every (input, guidance, seed).
    paired = [m for m in doc["quality"]["paired"]["quants"] if m["subject"] == "Q4_0"]
    assert paired and all(m["pairs"] == 12 for m in paired), paired
    guidance = [m for m in doc["quality"]["paired"]["guidance"] if m["subject"] == "2"]
    assert guidance and all(m["pairs"] == 12 for m in guidance)  # 2 quants × 3 inputs × 2 seeds

    markdown = storage.read_bytes(layout.report_md).decode()
    assert "## Inputs" in markdown and "- Inputs: 3" in markdown and OTHER_PROMPT in markdown
    assert "(wide/contact_sheet.png)" in markdown and "| Quant | Input | Guidance | Seed |" in markdown
    rows = list(csv.DictReader(io.StringIO(storage.read_bytes(layout.report_csv).decode())))
    assert len(rows) == 24 and {r["input"] for r in rows} == set(records)
    # The contact sheet starts with the input and its mask: the first row's first tiles are not blank.
    sheet = Image.open(io.BytesIO(storage.read_bytes(layout.of_input("mirrored").contact_sheet))).convert("L")
    top = sheet.crop((90, 22, 90 + 2 * 68, 22 + 64))
    assert top.getextrema()[0] < 200

    # `fluxaudit report DIR` rebuilds the same report from the run folder alone.
    before = json.loads(storage.read_bytes(layout.report_json))
    rebuilt = run_cli("report", str(tmp_path / "out"))
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    after = json.loads(storage.read_bytes(layout.report_json))
    assert after["summary"] == before["summary"], (after["summary"], before["summary"])
    assert after == before


def test_a_missing_input_fails_naming_its_index_before_any_model_loads(tiny_model, tmp_path: Path) -> None:
    doc = multi_doc(tiny_model, tmp_path / "in")
    doc["spec"]["inputs"][2]["mask"] = (tmp_path / "in" / "nope.png").as_uri()
    audit = parse_document(doc)
    storage = LocalStorage(tmp_path / "out")
    with pytest.raises(InputError, match=r"inputs\[2\]\.mask: .*nope\.png does not exist"):
        run_group(audit, "Q4_0", storage)
    layout = RunLayout(audit.spec.storage.prefix, audit.run_id())
    p = Partial.from_json(storage.read_json(layout.partial("Q4_0")))
    assert p.status == "failed" and not p.cells and "inputs[2].mask" in (p.error or "")
    assert p.load is None  # nothing was loaded for an input that cannot be read


def test_renaming_an_input_makes_another_run(tiny_model, tmp_path: Path) -> None:
    """The same bytes under another input name are another audit: its run id differs, nothing is mixed."""
    doc = multi_doc(tiny_model, tmp_path / "in")
    renamed = json.loads(json.dumps(doc))
    renamed["spec"]["inputs"][0]["name"] = "first"
    a, b = parse_document(doc), parse_document(renamed)
    assert a.run_id() != b.run_id()
