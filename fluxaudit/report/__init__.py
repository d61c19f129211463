"""Build the audit report from stored partials: the one place both modes share.

``build_report`` is the thin I/O shell: read partials and images from storage,
call the pure builders, write REPORT.md, report.json and the pictures back.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from PIL import Image

from ..assets import AssetError, resolve
from ..layout import RunLayout
from ..results import Partial
from ..spec import FluxAudit
from ..storage import NotFound, Storage
from .figures import contact_sheet, latency_chart
from .markdown import render_markdown
from .model import ReportData, build_report_data, report_json

__all__ = ["BuiltReport", "ReportData", "build_report", "read_partials"]


@dataclass(frozen=True)
class BuiltReport:
    data: ReportData
    json: dict[str, Any]
    markdown: str
    paths: dict[str, str]


def read_partials(audit: FluxAudit, storage: Storage) -> dict[str, Partial | None]:
    layout = RunLayout(audit.spec.storage.prefix, audit.run_id())
    out: dict[str, Partial | None] = {}
    for q in audit.spec.quants:
        raw = storage.read_json_or_none(layout.partial(q.label))
        out[q.label] = Partial.from_json(raw) if raw is not None else None
    return out


def _mask(audit: FluxAudit, storage: Storage) -> Image.Image | None:
    try:
        return Image.open(io.BytesIO(resolve(audit.spec.input, storage).mask))
    except (AssetError, OSError):
        return None


def build_report(audit: FluxAudit, storage: Storage) -> BuiltReport:
    layout = RunLayout(audit.spec.storage.prefix, audit.run_id())
    data = build_report_data(audit, read_partials(audit, storage))

    def read_image(path: str) -> bytes | None:
        try:
            return storage.read_bytes(path)
        except NotFound:
            return None

    storage.write_bytes(layout.contact_sheet, contact_sheet(data, read_image, _mask(audit, storage)), "image/png")
    storage.write_bytes(layout.latency_chart, latency_chart(data), "image/png")

    def link(path: str) -> str:
        return storage.link(path, layout.root)

    figures = {"contact_sheet": link(layout.contact_sheet), "latency": link(layout.latency_chart)}
    markdown = render_markdown(data, link, figures)
    doc = report_json(data)
    storage.write_bytes(layout.report_md, markdown.encode(), "text/markdown; charset=utf-8")
    storage.write_bytes(layout.report_json, json.dumps(doc, indent=2, sort_keys=True).encode(), "application/json")
    return BuiltReport(
        data=data,
        json=doc,
        markdown=markdown,
        paths={
            "report": layout.report_md,
            "json": layout.report_json,
            "contactSheet": layout.contact_sheet,
            "latency": layout.latency_chart,
        },
    )
