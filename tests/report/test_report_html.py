"""report.html opens in a real browser (Debian's headless Chromium driven by Playwright), with the answers
first and every picture rendered from inside the file: nothing loaded from anywhere else."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fluxaudit.layout import RunLayout
from fluxaudit.report import build_report
from fluxaudit.spec import parse_document
from fluxaudit.storage import LocalStorage

STORED = Path(__file__).parent / "fixtures"
CHROMIUM = shutil.which("chromium") or shutil.which("google-chrome")  # Debian's; GitHub's runners ship Chrome

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")


def _built(tmp_path: Path) -> Path:
    shutil.copytree(STORED, tmp_path / "run")
    storage = LocalStorage(tmp_path / "run")
    audit = parse_document(json.loads((STORED / "audit" / "golden" / "spec.json").read_text()), "fixture")
    build_report(audit, storage)
    page = tmp_path / "run" / RunLayout(audit.spec.storage.prefix, audit.run_id()).report_html
    # Alone in an empty folder: a picture that is not embedded has nothing to load from.
    alone = tmp_path / "alone" / "report.html"
    alone.parent.mkdir()
    shutil.copy(page, alone)
    return alone


def test_report_html_opens_with_every_image_rendered(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    page_path = _built(tmp_path)
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_path.as_uri(), wait_until="load")
        images = page.locator("img")
        count = images.count()
        loaded = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        shots = [images.nth(i).screenshot() for i in range(count)]
        headings = page.locator("h2, h3").all_inner_texts()
        full = page.screenshot(full_page=True)
        browser.close()
    # 5 figures + 6 cell thumbnails (3 quants × 2 guidance values of the stored run)
    assert count == 11 and all(loaded), loaded
    for i, shot in enumerate(shots):
        pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=np.float64)
        assert pixels.shape[0] > 20 and pixels.shape[1] > 20, (i, pixels.shape)
        assert pixels.std() > 5, f"image {i} rendered blank (std {pixels.std():.2f})"
    assert all(u.startswith(("file:", "data:")) for u in requests), requests  # nothing fetched from elsewhere
    assert headings[:5] == ["Answers", "1. Which quant", "2. Which guidance", "3. Is torch.compile worth it",
                            "Pictures"], headings[:5]  # fmt: skip
    assert Image.open(io.BytesIO(full)).size[1] > 2000  # tables and sections below the answers


def test_a_broken_embed_shows_as_a_failed_image(tmp_path: Path) -> None:
    """The check above can fail: an image whose data is corrupt is reported as not rendered."""
    from playwright.sync_api import sync_playwright

    page_path = _built(tmp_path)
    text = page_path.read_text()
    start = text.index('src="data:image/png;base64,') + len('src="data:image/png;base64,')
    page_path.write_text(text[:start] + "AAAA" + text[start + 4 :])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(page_path.as_uri(), wait_until="load")
        loaded = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        browser.close()
    assert loaded.count(False) == 1
