"""The audit's inputs as the report names them: where each came from, its prompt, its contact sheet (pure)."""

from __future__ import annotations

from collections.abc import Callable

from ..layout import RunLayout
from ..spec import InputSpec
from .data import ReportData
from .format import esc, table

LinkFn = Callable[[str], str]


def source(item: InputSpec) -> str:
    if item.session_paths():
        return f"session {esc(item.user_id)}/{esc(item.session_id)}"
    return f"{esc(item.image)} + mask {esc(item.mask)}"


def input_lines(data: ReportData) -> list[str]:
    """The header's lines: the one input in full, or how many and where they are listed."""
    spec = data.audit.spec
    if spec.input is not None:
        return [f"- Input: {source(spec.input)}", f"- Prompt: {esc(spec.input.prompt)}"]
    return [f"- Inputs: {len(spec.input_items())}, listed under Inputs; every cell runs on each"]


def inputs_section(data: ReportData, link: LinkFn) -> list[str]:
    """With ``spec.inputs``: one row per input, its contact sheet (input, mask, reference, then every group)."""
    spec = data.audit.spec
    if spec.inputs is None:
        return []
    layout = RunLayout(spec.storage.prefix, data.run_id)
    rows = [
        [
            esc(name or ""),
            source(item),
            esc(item.prompt),
            f"[contact sheet]({link(layout.of_input(name).contact_sheet)})",
        ]
        for name, item in spec.input_items()
    ]
    return [
        "## Inputs",
        "",
        "Each input's folder in the run holds its images, the input and mask as the pipeline received them and "
        "its contact sheet (first seed: the input and its mask, the reference, then every group × guidance).",
        "",
        *table(["Name", "Source", "Prompt", "Pictures"], rows),
    ]
