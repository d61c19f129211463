"""``report.html``: the report as one self-contained file a browser opens from a signed link.

Every picture is embedded (``data:`` URIs), so the page never depends on other objects' signed URLs,
which expire; the operator re-signs this one file.  The body is REPORT.md's own text rendered by
markdown-it (rich's dependency): one source for both, the answers first.  Cell images, which REPORT.md
links, appear inline as thumbnails (a browser will not open a ``data:`` link as a page).
"""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass, field

import numpy as np
from markdown_it import MarkdownIt
from PIL import Image

#: long side of a cell's thumbnail in the page (the full PNG stays in the run folder).
THUMBNAIL_SIDE = 512

STYLE = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#1b1f24}
h1,h2,h3{line-height:1.25}h2{border-bottom:1px solid #d0d7de;padding-bottom:.3em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:13px;display:block;overflow-x:auto}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f6f8fa}
img{max-width:100%;height:auto}img.cell{width:160px;display:block}code{background:#f6f8fa;padding:0 .2em}
"""


def png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def thumbnail_uri(pixels: np.ndarray) -> str:
    """An image as a JPEG ``data:`` URI of at most ``THUMBNAIL_SIDE`` px (keeps the page small)."""
    image = Image.fromarray(pixels).convert("RGB")
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


_DATA_LINK = re.compile(r'<a href="(data:image/[^"]+)">([^<]*)</a>')
_EMBED = re.compile(r"#fluxaudit-embed-(\d+)")


@dataclass
class Embeds:
    """The page's ``data:`` URIs, kept out of the markdown parser: markdown-it normalizes every link character
    by character (mdurl), which was most of a 1024² report's build time.  The markdown links to short
    placeholders; the rendered page gets the URIs."""

    uris: list[str] = field(default_factory=list)

    def add(self, uri: str) -> str:
        self.uris.append(uri)
        return f"#fluxaudit-embed-{len(self.uris) - 1}"

    def fill(self, rendered: str) -> str:
        return _EMBED.sub(lambda m: self.uris[int(m.group(1))], rendered)


def render_html(markdown: str, title: str, embeds: Embeds | None = None) -> str:
    """The page for REPORT.md's text whose picture links are ``data:`` URIs, or ``embeds``' placeholders."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    # markdown-it refuses data: URLs by default (a safety default for untrusted input); these are ours.
    md.validateLink = lambda url: not url.lower().startswith(("javascript:", "vbscript:", "file:"))  # type: ignore[method-assign]
    body = md.render(markdown)
    if embeds is not None:
        body = embeds.fill(body)
    body = _DATA_LINK.sub(
        lambda m: f'<img class="cell" src="{m.group(1)}" alt="{m.group(2)}" title="{m.group(2)}">', body
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n"
    )
