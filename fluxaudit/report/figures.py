"""Pictures for the report: contact sheet, difference sheet, latency and drift charts.

All are deterministic for the same inputs (no timestamps in PNG metadata), so a
rebuilt report is byte-identical.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

from ..layout import guidance_token
from .data import ReportData

LABEL_W = 90
HEADER_H = 22
PAD = 4


def _figure(figsize: tuple[float, float]) -> Any:
    """A matplotlib figure of its own, outside pyplot's global registry: the report renders its
    pictures on several threads at once, and pyplot's state is not thread-safe."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=100)


def _png(fig: Any) -> bytes:
    """A finished matplotlib figure as PNG bytes (no timestamp in the metadata: rebuilt reports are identical)."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _tile_size(width: int, height: int) -> tuple[int, int]:
    """A sheet's tile for pictures of this size: at most 256 px on the long side, never upscaled."""
    scale = min(1.0, 256 / max(width, height))
    return max(32, int(width * scale)), max(32, int(height * scale))


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


ArrayReader = Callable[[str], np.ndarray | None]


def _grid(
    data: ReportData,
    rows: list[str],
    tiles: dict[tuple[str, float], Image.Image],
    mask: np.ndarray | None,
    corner: str = "",
    plain_rows: frozenset[str] = frozenset(),
) -> bytes:
    """Rows × guidance columns of equally sized tiles, labelled, mask outline drawn in each tile;
    ``plain_rows`` leave absent tiles blank (not "missing")."""
    guidance = list(data.audit.spec.guidance_scales)
    quants = rows
    tile_w = tile_h = 0
    for img in tiles.values():
        tile_w, tile_h = max(tile_w, img.width), max(tile_h, img.height)
    if not tiles:
        tile_w = tile_h = 64
    tw, th = _tile_size(tile_w, tile_h)
    width = LABEL_W + len(guidance) * (tw + PAD) + PAD
    height = HEADER_H + len(quants) * (th + PAD) + PAD
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _font()
    outline = None
    if mask is not None:
        m = Image.fromarray(np.asarray(mask, dtype=np.uint8))
        binary = m.resize((tw, th), Image.Resampling.NEAREST).point(lambda v: 255 if v >= 128 else 0)
        outline = ImageChops.difference(binary, binary.filter(ImageFilter.MinFilter(3)))
    draw.text((4, 5), corner, fill=(90, 90, 90), font=font)
    for j, g in enumerate(guidance):
        x = LABEL_W + PAD + j * (tw + PAD)
        draw.text((x + 2, 5), f"guidance {guidance_token(g)}", fill=(0, 0, 0), font=font)
    for i, q in enumerate(quants):
        y = HEADER_H + i * (th + PAD)
        draw.text((4, y + th // 2 - 6), q, fill=(0, 0, 0), font=font)
        for j, g in enumerate(guidance):
            x = LABEL_W + PAD + j * (tw + PAD)
            tile = tiles.get((q, g))
            if tile is None and q in plain_rows:
                continue
            if tile is None:
                draw.rectangle((x, y, x + tw - 1, y + th - 1), fill=(235, 235, 235), outline=(180, 180, 180))
                draw.text((x + 4, y + th // 2 - 6), "missing", fill=(160, 0, 0), font=font)
                continue
            # a box reduction to within 2× of the tile first, then Lanczos: a 1024² image shrinks ~4× faster
            sheet.paste(tile.resize((tw, th), Image.Resampling.LANCZOS, reducing_gap=2.0), (x, y))
            if outline is not None:
                sheet.paste((255, 220, 0), (x, y, x + tw, y + th), outline)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()


INPUT_ROW = "input, mask"


def contact_sheet(
    data: ReportData,
    read: ArrayReader,
    mask: np.ndarray | None,
    input_name: str | None = None,
    input_image: np.ndarray | None = None,
) -> bytes:
    """Quant rows × guidance columns (first seed) of one input's generated images.  For one of
    ``spec.inputs`` the sheet starts with the input and its mask, then the reference's row."""
    seed = data.audit.spec.seeds[0]
    tiles = {}
    for c in data.cells:
        arr = read(c.image) if c.image and c.seed == seed and c.input == input_name else None
        if arr is not None:
            tiles[(c.quant, c.guidance)] = Image.fromarray(arr)
    rows = [g.label for g in data.groups]
    if input_name is None:
        return _grid(data, rows, tiles, mask)
    reference = data.decisions.reference
    rows = [INPUT_ROW, *sorted(rows, key=lambda label: label != reference)]  # stable: the rest keep their order
    guidance = data.audit.spec.guidance_scales
    if input_image is not None:
        tiles[(INPUT_ROW, guidance[0])] = Image.fromarray(input_image)
    if mask is not None and len(guidance) > 1:
        tiles[(INPUT_ROW, guidance[1])] = Image.fromarray(np.asarray(mask, dtype=np.uint8)).convert("RGB")
    return _grid(data, rows, tiles, mask, corner=input_name, plain_rows=frozenset({INPUT_ROW}))


def diff_sheet(data: ReportData, read: ArrayReader) -> bytes:
    """|image − reference| per pixel (channel mean, magma colour map) for every
    non-reference group: where a quant drifts, at a glance.  One colour scale for
    all tiles (white = the 99th percentile of all differences, printed top left),
    so tiles compare with each other."""
    import matplotlib

    decisions = data.decisions
    reference = decisions.reference if decisions else None
    seed = data.audit.spec.seeds[0]
    first = data.audit.spec.input_items()[0][0]  # the first input's cells (each input has its own contact sheet)
    refs = {c.guidance: c for c in data.cells if c.quant == reference and c.seed == seed and c.input == first}
    cmap = matplotlib.colormaps["magma"]
    diffs: dict[tuple[str, float], np.ndarray] = {}
    for c in data.cells:
        ref = refs.get(c.guidance)
        if c.quant == reference or c.seed != seed or c.input != first or ref is None or not c.image or not ref.image:
            continue
        a, b = read(c.image), read(ref.image)
        if a is None or b is None or a.shape != b.shape:
            continue
        diffs[(c.quant, c.guidance)] = (
            np.abs(a.astype(np.int16) - b.astype(np.int16)).sum(axis=-1, dtype=np.float32) / 3
        )
    top = max([float(np.percentile(d, 99)) for d in diffs.values()] + [1.0])  # over every pixel

    def tile(d: np.ndarray) -> Image.Image:  # averaged down to the tile first: colour-mapping 256² is ~16× less work
        small = np.asarray(Image.fromarray(d).resize(_tile_size(d.shape[1], d.shape[0]), Image.Resampling.BOX))
        return Image.fromarray((cmap(np.clip(small / top, 0, 1))[..., :3] * 255).astype(np.uint8))

    tiles = {key: tile(d) for key, d in diffs.items()}
    rows = [g.label for g in data.groups if g.label != reference]
    return _grid(data, rows, tiles, None, corner=f"white={top:.0f} lv")


def drift_chart(data: ReportData) -> bytes:
    """Whole-image and outside-mask PSNR against the reference, per quant, across guidance."""
    d = data.decisions
    guidance = list(data.audit.spec.guidance_scales)
    fig = _figure((7, 3.6))
    ax = fig.subplots()
    if d is not None and d.reference is not None:
        cap = 100.0
        for label in [g.label for g in data.groups if g.label != d.reference]:
            for attr, style in (("psnr_whole", "-o"), ("psnr_outside", "--x")):
                ys = []
                for g in guidance:
                    vals = [getattr(c, attr) for c in d.cells if c.quant == label and c.guidance == g]
                    vals = [min(v, cap) for v in vals if v is not None]
                    ys.append(float(np.median(vals)) if vals else np.nan)
                ax.plot(
                    range(len(guidance)),
                    ys,
                    style,
                    label=f"{label} {'whole' if attr == 'psnr_whole' else 'outside mask'}",
                )
        q = data.audit.spec.quality
        ax.axhline(q.min_psnr_db, color="grey", lw=0.8, ls=":", label=f"threshold {q.min_psnr_db:g} dB")
        ax.set_title(f"Drift against {d.reference} (higher is closer)")
        ax.legend(fontsize=7, ncol=2)
    else:
        ax.set_title("Drift: no reference results")
    ax.set_xticks(range(len(guidance)), [guidance_token(g) for g in guidance])
    ax.set_xlabel("guidance scale")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)
    return _png(fig)


def latency_chart(data: ReportData) -> bytes:
    """Step times per quant and runtime, as box plots (box: quartiles; whiskers: p10–p90; the sample
    counts under each box): the spread a speed answer rests on, at a glance."""
    from .speed import RUNTIME_NAMES

    series, labels = [], []
    for g in data.groups:
        for t in g.timings:
            series.append([s * 1000 for per_image in t.step_samples for s in per_image])
            labels.append(f"{g.label}\n{RUNTIME_NAMES[t.runtime]}\n{t.images} img × {t.steps // max(t.images, 1)}")
    fig = _figure((max(7.0, 1.1 * len(series) + 2), 4.2))
    ax = fig.subplots()
    if series:
        ax.boxplot(series, whis=(10, 90), showfliers=False)
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=7)
    else:
        ax.set_title("no timed steps")
    ax.set_ylabel("ms per denoising step")
    env = data.environment
    device = (env.gpu_name or env.device) if env else "?"
    ax.set_title(f"Step time per quant and runtime — {device}, {data.audit.spec.steps} steps per image")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


#: the fill metrics charted, with their axis labels and the value a perfect continuation has.
FILL_PANELS = (
    ("seam", "seam (≈1 seamless)", 1.0),
    ("colour_delta_e", "colour ΔE (0 = same colour)", 0.0),
    ("texture_ratio", "texture (≈1 like the ring)", 1.0),
    ("hallucination", "hallucination (CLIP, 0 = the prompt)", 0.0),
)


def fill_chart(data: ReportData) -> bytes:
    """Each fill metric per quant across guidance: the median over seeds (and inputs), with the bootstrap
    95 % interval of that median as a bar where there are several values."""
    from ..stats import median_interval

    guidance = list(data.audit.spec.guidance_scales)
    cells = data.decisions.cells
    fig = _figure((3.2 * len(FILL_PANELS), 3.4))
    axes = fig.subplots(1, len(FILL_PANELS))
    labels = list(dict.fromkeys(c.quant for c in cells))
    for ax, (attr, title, ideal) in zip(axes, FILL_PANELS, strict=True):
        for i, label in enumerate(labels):
            mid, low, high = [], [], []
            for g in guidance:
                vals = [getattr(c, attr) for c in cells if c.quant == label and c.guidance == g]
                vals = [v for v in vals if v is not None]
                m = median_interval(vals) if vals else None
                mid.append(m.median if m else np.nan)
                low.append(m.median - m.low if m else 0.0)
                high.append(m.high - m.median if m else 0.0)
            xs = np.arange(len(guidance)) + (i - (len(labels) - 1) / 2) * 0.08
            ax.errorbar(xs, mid, yerr=[low, high], fmt="-o", ms=3, capsize=2, label=label)
        ax.axhline(ideal, color="grey", lw=0.8, ls=":")
        ax.set_xticks(range(len(guidance)), [guidance_token(g) for g in guidance])
        ax.set_xlabel("guidance scale")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    if labels:
        axes[0].legend(fontsize=7)
    else:
        axes[0].set_title("no fill scores", fontsize=9)
    return _png(fig)
