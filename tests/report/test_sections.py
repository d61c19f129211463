"""Golden tests: every report section rendered from a stored run (no model runs), compared with
its golden file.  ``FLUXAUDIT_UPDATE_GOLDEN=1`` rewrites the goldens after an intended change
(review the diff); ``python -m tests.report.build_fixture`` rebuilds the stored run."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from fluxaudit.layout import RunLayout
from fluxaudit.report import StoredArrays, read_partials, sections
from fluxaudit.report import answers as answers_module
from fluxaudit.report.answers import Figures
from fluxaudit.report.data import ReportData, build_report_data, report_json
from fluxaudit.report.markdown import header, methodology, render_markdown
from fluxaudit.spec import parse_document
from fluxaudit.storage import LocalStorage

HERE = Path(__file__).parent
STORED = HERE / "fixtures"
GOLDEN = HERE / "golden"
UPDATE = os.environ.get("FLUXAUDIT_UPDATE_GOLDEN") == "1"
FIGURES = Figures(
    contact_sheet="contact_sheet.png",
    diff_sheet="diff_sheet.png",
    drift="drift.png",
    latency="latency.png",
    fill="fill.png",
)


@functools.cache
def stored_report() -> ReportData:
    storage = LocalStorage(STORED)
    audit = parse_document(json.loads((STORED / "audit" / "golden" / "spec.json").read_text()), "fixture")
    layout = RunLayout(audit.spec.storage.prefix, audit.run_id())
    read = StoredArrays(storage)
    partials = read_partials(audit, storage)
    return build_report_data(audit, partials, {None: (read(layout.input_mask), read(layout.input_image))}, read)


def _link(path: str) -> str:
    return path.rsplit("/", 1)[-1]


SECTIONS: dict[str, Callable[[ReportData], list[str]]] = {
    "header": header,
    "answers": answers_module.answers,
    "quant_answer": answers_module.quant_answer,
    "guidance_answer": answers_module.guidance_answer,
    "compile_answer": answers_module.compile_answer,
    "pictures": lambda d: answers_module.pictures(FIGURES),
    "environment": lambda d: sections.environment(d.environment),
    "groups": sections.groups,
    "results_matrix": lambda d: sections.results_matrix(d, _link),
    "per_quant": sections.per_quant,
    "fast_path": sections.fast_path,
    "utilisation": sections.utilisation,
    "quality_cells": sections.quality_cells,
    "fill_quality": sections.fill_quality,
    "paired_fill": sections.paired_fill,
    "compile_check": sections.compile_check,
    "methodology": lambda d: methodology(),
}


def _check(name: str, text: str) -> None:
    golden = GOLDEN / name
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"no golden for {name}: run with FLUXAUDIT_UPDATE_GOLDEN=1 and review it"
    assert text == golden.read_text(), f"{name} changed; if intended, refresh with FLUXAUDIT_UPDATE_GOLDEN=1"


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_section_matches_its_golden(name: str) -> None:
    lines = SECTIONS[name](stored_report())
    assert lines, f"{name} rendered nothing from the stored run"
    _check(f"{name}.md", "\n".join(lines) + "\n")


def test_whole_report_is_its_sections_in_order() -> None:
    data = stored_report()
    md = render_markdown(data, _link, FIGURES)
    _check("REPORT.md", md)
    positions = [md.index(SECTIONS[name](data)[0]) for name in ("header", "answers", "pictures", "environment",
                 "groups", "results_matrix", "per_quant", "fast_path", "utilisation", "quality_cells", "fill_quality", "paired_fill",
                 "compile_check", "methodology")]  # fmt: skip
    assert positions == sorted(positions)


def test_report_json_is_golden_and_strict() -> None:
    doc = report_json(stored_report())
    text = json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"
    _check("report.json", text)
    assert doc["summary"]["compileVerdict"] == "go" and doc["groups"][2]["fastPath"]["compile"] == "regional"


def test_the_quant_table_names_each_runtime_it_times_the_answers_first() -> None:
    """A step time without its runtime misleads (stock and the fast path can order the quants
    differently), so each timed runtime gets its own columns, the speed answer's runtime first."""
    data = stored_report()
    groups = []
    for g in data.groups:
        stock = g.timing("stock")
        assert stock is not None
        fast = stock.model_copy(update={"runtime": "fastPath", "median_step_seconds": 0.0123})
        groups.append(g.model_copy(update={"timings": [fast, stock]}))
    lines = answers_module.quant_answer(data.model_copy(update={"groups": groups}))
    header_row = next(line for line in lines if line.startswith("| Quant |"))
    assert header_row.index("s/step, stock diffusers") < header_row.index("s/step, the fast path")
    q4 = next(line for line in lines if line.startswith("| Q4\\_0 |"))
    assert "0.0123 (" in q4 and "0.0431 (0.0417–0.0461)" in q4
