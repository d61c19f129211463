"""How long the report takes to build at full size: a demo run's cells blown up to 1024², then ``build_report``.

    fluxaudit demo --out /tmp/demo && python -m benchmarks.report_build --run /tmp/demo --side 1024

The demo's run (15 quant cells and 5 reference cells) is copied with every stored image resized to
``--side`` (LANCZOS, with fresh per-pixel noise so PNG sizes stay realistic) and every latent array
replaced by one of FLUX's packed shape at that size ((1, (side/16)², 64)), then the report is built
``--repeats`` times into a fresh copy each time (each build decodes every image itself, as a rebuild does).
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def blow_up(src: Path, dst: Path, side: int) -> None:
    rng = np.random.default_rng(0)
    shutil.copytree(src, dst)
    for png in dst.rglob("*.png"):
        with Image.open(png) as im:
            mode = im.mode
            big = im.convert("RGB" if mode != "L" else "L").resize((side, side), Image.Resampling.LANCZOS)
        if mode != "L":
            noisy = np.asarray(big, dtype=np.int16) + rng.integers(-6, 7, size=(side, side, 3))
            big = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
        buf = io.BytesIO()
        big.save(buf, format="PNG", compress_level=6)
        png.write_bytes(buf.getvalue())
    for npy in dst.rglob("*.npy"):
        np.save(npy, rng.standard_normal((1, (side // 16) ** 2, 64)).astype(np.float32), allow_pickle=False)
    for generated in ("REPORT.md", "report.json", "report.html", "report.csv"):
        for f in dst.rglob(generated):
            f.unlink()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="the --out folder of a finished demo")
    p.add_argument("--side", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    import json

    from fluxaudit.report import build_report
    from fluxaudit.spec import parse_document
    from fluxaudit.storage import LocalStorage

    (spec_json,) = args.run.glob("audit/*/spec.json")
    audit = parse_document(json.loads(spec_json.read_text()))
    with tempfile.TemporaryDirectory(prefix="fluxaudit-report-bench-") as tmp:
        big = Path(tmp) / "big"
        blow_up(args.run, big, args.side)
        seconds = []
        for i in range(args.repeats):
            fresh = Path(tmp) / f"copy-{i}"
            shutil.copytree(big, fresh)
            start = time.perf_counter()
            built = build_report(audit, LocalStorage(fresh))
            seconds.append(time.perf_counter() - start)
            shutil.rmtree(fresh)
        cells = len(built.data.cells)
    print(json.dumps({"benchmark": "report_build", "side": args.side, "cells": cells,
                      "seconds": [round(s, 2) for s in seconds], "median": round(float(np.median(seconds)), 2)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
