"""Build the audit report from stored partials: the one place both modes share.

``build_report`` is the thin I/O shell: read partials and images from storage, call
the pure builders (``model`` → ``decisions`` → ``data``), write REPORT.md (relative links), report.html (self-contained),
report.csv, the pictures and, last, report.json back.
"""

from __future__ import annotations

import functools
import io
import json
import os
import posixpath
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..layout import RunLayout
from ..results import Partial
from ..run_folder import partials_of
from ..spec import FluxAudit
from ..storage import NotFound, Storage
from .cell_quality import InputPixels
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


def _decode(path: str, raw: bytes | None) -> np.ndarray | None:
    if raw is None:
        return None
    try:
        if path.endswith(".npy"):
            return np.load(io.BytesIO(raw), allow_pickle=False)
        return np.asarray(Image.open(io.BytesIO(raw)).convert("L" if "/inputs/mask" in path else "RGB"))
    except (OSError, ValueError):
        return None


class StoredArrays:
    """Stored PNGs and .npy files as arrays, each decoded once (quality reads each reference image once
    per quant, and the sheets read them all again); None when absent or unreadable (a group that died
    mid-write must not take the report down with it)."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self._arrays: dict[str, np.ndarray | None] = {}

    def _fetch(self, path: str) -> bytes | None:
        try:
            return self.storage.read_bytes(path)
        except NotFound:
            return None

    def __call__(self, path: str) -> np.ndarray | None:
        if path not in self._arrays:
            self._arrays[path] = _decode(path, self._fetch(path))
        return self._arrays[path]

    def load(self, paths: list[str]) -> None:
        """Read ``paths`` one at a time on this thread (the storage may be one bucket client), each decoded
        on a pool thread as soon as it is read: Pillow's PNG decoder releases the GIL, and at 1024² decoding
        one after another took seconds.  A file's bytes are dropped once decoded."""
        todo = [p for p in dict.fromkeys(paths) if p not in self._arrays]
        with ThreadPoolExecutor(max_workers=max(1, min(len(todo), os.cpu_count() or 1))) as pool:
            decoding = {p: pool.submit(_decode, p, self._fetch(p)) for p in todo}
            self._arrays |= {p: future.result() for p, future in decoding.items()}


def _stored_paths(layout: RunLayout, names: list[str | None], partials: dict[str, Partial | None]) -> list[str]:
    """Every array the report reads: each input's image and mask, each cell's image and final latents."""
    inputs = [p for n in names for p in (layout.of_input(n).input_mask, layout.of_input(n).input_image)]
    cells = [p for part in partials.values() if part for c in part.cells for p in (c.image, c.latents) if p]
    return inputs + cells


def _pictures(
    data: ReportData, read: Callable[[str], np.ndarray | None], pixels: InputPixels, layout: RunLayout
) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Each input's contact sheet, and the report's pictures in Figures' order (the run's contact sheet is
    the first input's).  Rendered on one thread each: the sheets are mostly Pillow's work, which releases
    the GIL, and the charts mostly matplotlib's, so the two overlap (BENCHMARKS.md §8.12)."""
    names = list(pixels)
    jobs: dict[str, Callable[[], bytes]] = {
        layout.of_input(n).contact_sheet: functools.partial(contact_sheet, data, read, pixels[n][0], n, pixels[n][1])
        for n in names
    }
    jobs |= {
        layout.diff_sheet: functools.partial(diff_sheet, data, read),
        layout.drift_chart: functools.partial(drift_chart, data),
        layout.latency_chart: functools.partial(latency_chart, data),
        layout.fill_chart: functools.partial(fill_chart, data),
    }
    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        done = {path: pool.submit(job) for path, job in jobs.items()}
        pngs = {path: future.result() for path, future in done.items()}
    sheets = {layout.of_input(n).contact_sheet: pngs[layout.of_input(n).contact_sheet] for n in names}
    pictures = {
        layout.contact_sheet: next(iter(sheets.values())),
        **{p: pngs[p] for p in (layout.diff_sheet, layout.drift_chart, layout.latency_chart, layout.fill_chart)},
    }
    return sheets, pictures


def build_report(audit: FluxAudit, storage: Storage) -> BuiltReport:
    layout = RunLayout(audit.spec.storage.prefix, audit.run_id())
    read = StoredArrays(storage)
    names = [name for name, _ in audit.spec.input_items()]
    partials = read_partials(audit, storage)
    read.load(_stored_paths(layout, names, partials))
    pixels = {n: (read(layout.of_input(n).input_mask), read(layout.of_input(n).input_image)) for n in names}
    data = build_report_data(audit, partials, pixels, read)

    sheets, pictures = _pictures(data, read, pixels, layout)
    for path, png in sheets.items():
        if path != layout.contact_sheet:
            storage.write_bytes(path, png, "image/png")
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
