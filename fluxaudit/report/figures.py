"""Pictures for the report: the contact sheet and the latency chart.

Both are deterministic for the same inputs (no timestamps in PNG metadata), so a
rebuilt report is byte-identical.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

from ..layout import guidance_token
from .model import ReportData

LABEL_W = 90
HEADER_H = 22
PAD = 4


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def contact_sheet(data: ReportData, read_image: Callable[[str], bytes | None], mask: Image.Image | None) -> bytes:
    """Quant rows × guidance columns (first seed), labelled, mask outline drawn in each tile."""
    quants = [g.label for g in data.groups]
    guidance = list(data.audit.spec.guidance_scales)
    seed = data.audit.spec.seeds[0]
    by_cell = {(c.quant, c.guidance): c for c in data.cells if c.seed == seed}
    tile_w = tile_h = 0
    tiles: dict[tuple[str, float], Image.Image] = {}
    for key, cell in by_cell.items():
        raw = read_image(cell.image) if cell.image else None
        if raw is None:
            continue
        img = Image.open(io.BytesIO(raw)).convert("RGB")
        tiles[key] = img
        tile_w, tile_h = max(tile_w, img.width), max(tile_h, img.height)
    if not tiles:
        tile_w = tile_h = 64
    scale = min(1.0, 256 / max(tile_w, tile_h))
    tw, th = max(32, int(tile_w * scale)), max(32, int(tile_h * scale))
    width = LABEL_W + len(guidance) * (tw + PAD) + PAD
    height = HEADER_H + len(quants) * (th + PAD) + PAD
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _font()
    outline = None
    if mask is not None:
        binary = mask.convert("L").resize((tw, th), Image.Resampling.NEAREST).point(lambda v: 255 if v >= 128 else 0)
        outline = ImageChops.difference(binary, binary.filter(ImageFilter.MinFilter(3)))
    for j, g in enumerate(guidance):
        x = LABEL_W + PAD + j * (tw + PAD)
        draw.text((x + 2, 5), f"guidance {guidance_token(g)}", fill=(0, 0, 0), font=font)
    for i, q in enumerate(quants):
        y = HEADER_H + i * (th + PAD)
        draw.text((4, y + th // 2 - 6), q, fill=(0, 0, 0), font=font)
        for j, g in enumerate(guidance):
            x = LABEL_W + PAD + j * (tw + PAD)
            tile = tiles.get((q, g))
            if tile is None:
                draw.rectangle((x, y, x + tw - 1, y + th - 1), fill=(235, 235, 235), outline=(180, 180, 180))
                draw.text((x + 4, y + th // 2 - 6), "missing", fill=(160, 0, 0), font=font)
                continue
            sheet.paste(tile.resize((tw, th), Image.Resampling.LANCZOS), (x, y))
            if outline is not None:
                sheet.paste((255, 220, 0), (x, y, x + tw, y + th), outline)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()


def latency_chart(data: ReportData) -> bytes:
    """Median seconds per image for each quant across the guidance sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    guidance = list(data.audit.spec.guidance_scales)
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    width = 0.8 / max(1, len(data.groups))
    for i, g in enumerate(data.groups):
        values = []
        for gs in guidance:
            cells = [c.wall_seconds for c in data.cells if c.quant == g.label and c.guidance == gs]
            values.append(sorted(cells)[len(cells) // 2] if cells else 0.0)
        xs = [k + (i - (len(data.groups) - 1) / 2) * width for k in range(len(guidance))]
        ax.bar(xs, values, width=width, label=g.label)
    ax.set_xticks(range(len(guidance)), [guidance_token(g) for g in guidance])
    ax.set_xlabel("guidance scale")
    ax.set_ylabel("wall seconds per image")
    device = (data.environment or {}).get("gpuName") or (data.environment or {}).get("device", "?")
    ax.set_title(f"Latency per image — {device}, {data.audit.spec.steps} steps")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
