"""Markdown building blocks: escaping and number formats (pure).

Everything a user typed (prompt, URIs, error messages) is escaped before it goes
into Markdown: a prompt must not be able to inject links, HTML or table cells.
"""

from __future__ import annotations

import html
import math
import re

#: characters that act inline (line-start syntax cannot occur: cells never start a line).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def esc(text: object) -> str:
    """Escape for inline Markdown and table cells: HTML entities, Markdown punctuation, no newlines."""
    s = html.escape(str(text), quote=False)
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return " ".join(s.split())


def size(n: int | None) -> str:
    if n is None:
        return "—"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return str(n)


def num(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def ms(x: float | None) -> str:
    return "—" if x is None else f"{x * 1000:.1f}"


def db(x: float | None) -> str:
    if x is None:
        return "—"
    return "identical" if math.isinf(x) else f"{x:.2f}"


def ssim(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out
