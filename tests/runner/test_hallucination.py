"""The hallucination score through its real loading path, offline: a tiny random CLIP from the local hub
cache (as the tiny FLUX is).  What the random model can show: the checkpoint loads like any other, the
score is a probability, it is computed on the fill's crop (pixels inside change it, pixels far outside
do not), and the runner records it per cell.  What it cannot show: whether a fill looks like an object —
that needs the trained default (openai/clip-vit-base-patch32).  A model that cannot be loaded gives no
score and a note that names it, never a made-up number."""

from __future__ import annotations

import copy
import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image

from fluxaudit.report import build_report
from fluxaudit.spec import DEFAULT_PROMPT, parse_document
from fluxaudit.storage import LocalStorage
from fluxaudit_runner.group import run_group
from fluxaudit_runner.hallucination import fill_crop, load_scorer
from fluxaudit_runner.tiny.clip import TINY_CLIP_REPO
from tests.support.helpers import audit_doc


def picture(seed: int) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((96, 128, 3)) * 255).astype(np.uint8))


P = DEFAULT_PROMPT
MASK = Image.new("L", (128, 96))
MASK.paste(255, (40, 30, 80, 60))


def test_the_tiny_clip_scores_the_fills_crop_as_a_probability(tiny_model) -> None:
    doc = audit_doc(tiny_model, quality={"clipModel": TINY_CLIP_REPO})
    scorer, note = load_scorer(parse_document(doc).spec)
    assert scorer is not None and note is None and scorer.name == TINY_CLIP_REPO
    image = picture(0)
    first = scorer.score(image, MASK, P)
    assert first is not None and 0.0 <= first <= 1.0 and scorer.score(image, MASK, P) == first  # deterministic
    far = np.asarray(image).copy()
    far[:, 110:] = 0  # right of the crop (40..80 grown by 15 %)
    assert scorer.score(Image.fromarray(far), MASK, P) == first
    inside = np.asarray(image).copy()
    inside[30:60, 40:80] = 255
    assert scorer.score(Image.fromarray(inside), MASK, P) != first
    assert fill_crop(image, MASK).size == (52, 38) and scorer.score(image, Image.new("L", (128, 96)), P) is None
    # the input's own prompt is what the fill is scored against: another prompt, another probability
    assert scorer.score(image, MASK, "a red sports car") != first


def test_a_model_that_cannot_be_loaded_gives_no_score_and_says_why(tiny_model) -> None:
    scorer, note = load_scorer(parse_document(audit_doc(tiny_model, quality={"clipModel": "nobody/no-clip"})).spec)
    assert scorer is None and "nobody/no-clip could not be loaded" in note
    scorer, note = load_scorer(parse_document(audit_doc(tiny_model, quality={"clipModel": None})).spec)
    assert scorer is None and "quality.clipModel is null" in note


def test_the_runner_records_a_score_per_cell_and_the_report_carries_it(tiny_model, tmp_path: Path) -> None:
    one = [{"label": "Q8_0", "file": tiny_model.gguf_files["Q8_0"]}]
    doc = audit_doc(tiny_model, quants=one, quality={"clipModel": TINY_CLIP_REPO})
    audit = parse_document(doc)
    storage = LocalStorage(tmp_path / "a")
    partial = run_group(audit, "Q8_0", storage)
    assert partial.hallucination_model == TINY_CLIP_REPO and partial.hallucination_note is None
    assert all(c.hallucination is not None and 0 <= c.hallucination <= 1 for c in partial.cells)
    built = build_report(audit, storage)
    rows = list(csv.DictReader(io.StringIO(storage.read_bytes(built.paths["csv"]).decode())))
    assert all(float(r["hallucination"]) >= 0 for r in rows)
    # unloadable: no score anywhere, the report says why
    other = copy.deepcopy(doc)
    other["spec"]["quality"] = {"clipModel": "nobody/no-clip"}
    audit = parse_document(other)
    storage = LocalStorage(tmp_path / "b")
    partial = run_group(audit, "Q8_0", storage)
    assert all(c.hallucination is None for c in partial.cells)
    notes = build_report(audit, storage).json["quality"]["notes"]
    assert any("nobody/no-clip could not be loaded" in n for n in notes)
