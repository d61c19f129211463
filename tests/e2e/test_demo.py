"""The README's promise: ``fluxaudit demo`` on a fresh machine, twice, same images; the defaults of the
day (the bf16 reference as its own group, timing evidence with spread, the noise-aware speed rule)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.helpers import run_cli

pytestmark = pytest.mark.slow


def _run_dir(out: Path) -> Path:
    (run_dir,) = (out / "audit").iterdir()
    return run_dir


def test_demo_twice_same_images_and_report_rebuild(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    first = run_cli("demo", "--out", str(tmp_path / "o1"), "--model-dir", str(model_dir))
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = _run_dir(tmp_path / "o1")
    assert first.stdout.strip() == str(run_dir / "REPORT.md")
    pngs = sorted(p.name for p in run_dir.glob("*_gs*.png"))
    assert len(pngs) == 20  # three quants and the bf16 reference × five guidance values
    assert sorted(p.name for p in (run_dir / "partials").iterdir()) == [
        "Q4_0.json",
        "Q5_K_S.json",
        "Q8_0.json",
        "bf16.json",
    ]
    for name in ("REPORT.md", "report.json", "report.html", "report.csv", "contact_sheet.png", "latency.png",
                 "diff_sheet.png", "drift.png", "fill.png"):  # fmt: skip
        assert (run_dir / name).stat().st_size > 0
    report = json.loads((run_dir / "report.json").read_text())
    assert report["complete"] and len(report["cells"]) == 20
    md = (run_dir / "REPORT.md").read_text()
    assert md.count("](Q") + md.count("](bf16") == 20  # every cell links its image, relative to the report
    assert (
        "**go (traceable; speed-up unmeasured)**" in md
        and "| pipeline (" in md
        and "| transformer (its frames in the pipeline's trace) | 1 | 0 |" in md
    )
    assert "Reference: bf16 (spec.reference = bf16)" in md and "### 2. Which guidance" in md
    assert report["quality"]["reference"] == "bf16" and len(report["quality"]["cells"]) == 20
    # the fill scored on its own terms (the tiny random CLIP: the path, not the semantics), then paired
    assert all(c["seam"] is not None and 0 <= c["hallucination"] <= 1 for c in report["quality"]["cells"])
    assert {m["metric"] for m in report["quality"]["paired"]["quants"]} == {"seam", "colourDeltaE", "texture",
                                                                             "hallucination"}  # fmt: skip
    # The reference is never recommended; the speed answer names its rule's outcome, runtime and spread.
    summary = report["summary"]
    assert summary["reference"] == "bf16" and summary["recommendedQuant"] in ("Q4_0", "Q5_K_S", "Q8_0")
    assert summary["quantBasis"] in ("faster", "tied", "only-passing") and summary["speed"]["runtime"] == "stock"
    q8 = next(g for g in report["groups"] if g["label"] == "Q8_0")
    (stock,) = q8["timings"]  # on CPU the sweep is stock diffusers: one runtime, its spread and counts
    assert stock["runtime"] == "stock" and stock["images"] == 5 and stock["steps"] == 20
    assert stock["p10StepSeconds"] <= stock["medianStepSeconds"] <= stock["p90StepSeconds"]
    assert q8["placement"]["mode"] == "resident" and q8["calibration"]["samples"] >= 3
    assert "### Timing evidence" in md and "| p10–p90 ms/step |" in md
    # First screen: the three answers with their rules, then the pictures, then the details.
    order = [
        md.index(h)
        for h in (
            "**Recommended:",
            "Rule: among quants whose every cell",
            "### 2. Which guidance",
            "### 3. Is torch.compile worth it",
            "## Pictures",
            "](contact_sheet.png)",
            "](diff_sheet.png)",
            "## Environment",
            "## Results matrix",
        )
    ]
    assert order == sorted(order)

    # the same images without the compile check (which changes no cell and costs a third of the run here)
    second = run_cli("demo", "--out", str(tmp_path / "o2"), "--model-dir", str(model_dir), "--no-compile-check")
    assert second.returncode == 0, second.stderr[-3000:]
    other = _run_dir(tmp_path / "o2")
    assert other.name == run_dir.name
    for name in pngs:
        assert (other / name).read_bytes() == (run_dir / name).read_bytes(), name
    assert "### 3. Is torch.compile worth it\n\n**not run**" in (other / "REPORT.md").read_text()

    # The report is a function of the stored partials: rebuilding it changes nothing.
    before = {n: (run_dir / n).read_bytes() for n in ("REPORT.md", "report.json", "contact_sheet.png", "latency.png")}
    rebuilt = run_cli("report", str(tmp_path / "o1"))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.strip() == str(run_dir / "REPORT.md")
    assert {n: (run_dir / n).read_bytes() for n in before} == before

    # Two runs of the same audit compare clean: identical images, step times within the noise of a
    # shared 2-core machine (the threshold is wide: this checks the plumbing, test_compare the rule).
    compared = run_cli("compare", str(tmp_path / "o1"), str(tmp_path / "o2"), "--max-slowdown", "1.0")
    assert compared.returncode == 0, compared.stderr[-3000:]
    assert "no regression" in compared.stderr
    rows = (run_dir / "report.csv").read_text().splitlines()
    assert rows[0].startswith("quant,input,guidance,seed,secondsPerStep") and len(rows) == 1 + 20
