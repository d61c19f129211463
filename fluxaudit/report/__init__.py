"""Build the audit report from stored partials: the one place both modes share.

``build_report`` is the thin I/O shell: read partials and images from storage, call
the pure builders (``model`` → ``decisions`` → ``data``), write REPORT.md (relative links), report.html (self-contained),
report.csv, the pictures and, last, report.json back.
"""

from __future__ import annotations

import functools
import io
import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..layout import RunLayout
from ..results import Partial
from ..run_folder import partials_of
from ..spec import FluxAudit
from ..storage import NotFound, Storage
from .data import ReportData, build_report_data, report_json
from .export import cells_csv
from .figures import contact_sheet, diff_sheet, drift_chart, fill_chart, latency_chart
from .html import Embeds, png_uri, render_html, thumbnail_uri
from .markdown import Figures, render_markdown

__all__ = ["BuiltReport", "ReportData", "build_report", "read_partials"]


@dataclass(frozen=True)
class BuiltReport:
    data: ReportData
    json: dict[str, Any]
    markdown: str
    paths: dict[str, str]


def read_partials(audit: FluxAudit, storage: Storage) -> dict[str, Partial | None]:
    """Every group's partial; one written by another spec or input, or unreadable, is refused (named)."""
    return partials_of(audit, storage)


def _reader(storage: Storage) -> Callable[[str], np.ndarray | None]:
    """Stored PNGs and .npy files as arrays; None when absent or unreadable (a group
    that died mid-write must not take the report down with it)."""

    def read(path: str) -> np.ndarray | None:
        try:
            raw = storage.read_bytes(path)
        except NotFound:
            return None
        try:
            if path.endswith(".npy"):
                return np.load(io.BytesIO(raw), allow_pickle=False)
            return np.asarray(Image.open(io.BytesIO(raw)).convert("L" if "/inputs/mask" in path else "RGB"))
        except (OSError, ValueError):
            return None

    return read


def build_report(audit: FluxAudit, storage: Storage) -> BuiltReport:
    layout = RunLayout(audit.spec.storage.prefix, audit.run_id())
    # One decode per stored object: quality reads each reference image once per quant,
    # and the contact and difference sheets read them all again.
    read = functools.lru_cache(maxsize=None)(_reader(storage))
    names = [name for name, _ in audit.spec.input_items()]
    pixels = {n: (read(layout.of_input(n).input_mask), read(layout.of_input(n).input_image)) for n in names}
    data = build_report_data(audit, read_partials(audit, storage), pixels, read)

    # one contact sheet per input (with one input: the run's own, below; with several: the first's is the run's too)
    sheets = {layout.of_input(n).contact_sheet: contact_sheet(data, read, pixels[n][0], n, pixels[n][1]) for n in names}
    for path, png in sheets.items():
        if path != layout.contact_sheet:
            storage.write_bytes(path, png, "image/png")
    # in Figures' order; written once, and embedded in report.html from these bytes
    pictures = {
        layout.contact_sheet: next(iter(sheets.values())),
        layout.diff_sheet: diff_sheet(data, read),
        layout.drift_chart: drift_chart(data),
        layout.latency_chart: latency_chart(data),
        layout.fill_chart: fill_chart(data),
    }
    for path, png in pictures.items():
        storage.write_bytes(path, png, "image/png")

    def relative(path: str) -> str:  # REPORT.md reads from the run folder, a bucket or a checkout alike
        return posixpath.relpath(path, layout.root)

    embeds = Embeds()

    def embedded(path: str) -> str:  # a cell's image: a thumbnail of the pixels already decoded above
        pixels = read(path)
        return relative(path) if pixels is None else embeds.add(thumbnail_uri(pixels))

    markdown = render_markdown(data, relative, Figures(*map(relative, pictures)))
    figures = Figures(*(embeds.add(png_uri(png)) for png in pictures.values()))
    page = render_html(render_markdown(data, embedded, figures), f"FluxAudit — {audit.metadata.name}", embeds)
    doc = report_json(data)
    storage.write_bytes(layout.report_md, markdown.encode(), "text/markdown; charset=utf-8")
    storage.write_bytes(layout.report_html, page.encode(), "text/html; charset=utf-8")
    storage.write_bytes(layout.report_csv, cells_csv(doc).encode(), "text/csv; charset=utf-8")
    storage.write_bytes(  # last: its presence is what "the report is ready" means to the operator
        layout.report_json,
        json.dumps(doc, indent=2, sort_keys=True, allow_nan=False).encode(),
        "application/json",
    )
    return BuiltReport(
        data=data,
        json=doc,
        markdown=markdown,
        paths={
            "report": layout.report_md,
            "html": layout.report_html,
            "json": layout.report_json,
            "csv": layout.report_csv,
            "contactSheet": layout.contact_sheet,
            "latency": layout.latency_chart,
            "diffSheet": layout.diff_sheet,
            "drift": layout.drift_chart,
            "fill": layout.fill_chart,
        },
    )
