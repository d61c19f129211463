"""``report.csv``: one row per timed cell with its quality against the reference, for a spreadsheet or a
notebook (pure: from the report.json document, so it always agrees with it)."""

from __future__ import annotations

import csv
import io
from typing import Any

TIMING = ("secondsPerStep", "wallSeconds", "cudaSeconds", "peakMemoryBytes", "repeats", "image")
QUALITY = ("psnrWhole", "psnrInside", "psnrOutside", "ssimWhole", "ssimInside", "ssimOutside", "latentMad",
           "psnrOutsideVsInput", "clippedInside", "seam", "colourDeltaE", "textureRatio", "hallucination")  # fmt: skip
#: ``input``: the input's name with ``spec.inputs``, empty for the one input of ``spec.input``.
COLUMNS = ("quant", "input", "guidance", "seed", *TIMING, *QUALITY)


def cells_csv(doc: dict[str, Any]) -> str:
    """Rows in the report's cell order; quality columns empty for the reference and for cells without
    one (a failed reference cell); PSNR of identical pixels is ``inf``, as in report.json."""

    def key(c: dict[str, Any]) -> tuple[Any, ...]:
        return c["quant"], c.get("input"), c["guidance"], c["seed"]

    quality = {key(q): q for q in (doc.get("quality") or {}).get("cells") or []}
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for cell in doc.get("cells") or []:
        q = quality.get(key(cell), {})
        row = {
            **{k: cell.get(k) for k in ("quant", "input", "guidance", "seed", *TIMING)},
            **{k: q.get(k) for k in QUALITY},
        }
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()
