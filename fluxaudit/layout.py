"""Storage paths of one audit run — the contract between runner, operator and report.

    {prefix}/{run_id}/{quant}_gs{g}.png            one image per cell (_s{seed} when several seeds)
    {prefix}/{run_id}/latents/{quant}_gs{g}.npy    final latents of the cell (quality)
    {prefix}/{run_id}/partials/{quant}.json        the group's results, rewritten cell by cell
    {prefix}/{run_id}/embeddings/{key}.safetensors each prompt's embeddings, encoded once per audit
    {prefix}/{run_id}/REPORT.md, report.json, contact_sheet.png, latency.png

With ``spec.inputs`` each input has a folder, ``{prefix}/{run_id}/{input}/``, laid out as a one-input run
is (its images, latents, ``inputs/`` and contact sheet): ``RunLayout.of_input``.

Guidance is written with ``:g`` (2, 4, 3.5), not ``:.0f``: 3.5 and 4 must not
share a file.  Every segment is checked, so nothing can leave the run folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UnsafePathError(ValueError):
    """A storage path that could escape its prefix or confuse a backend."""


def check_relative_path(path: str) -> str:
    """Accept ``a/b/c.ext`` made of plain segments; reject '..', absolute paths,
    empty segments, backslashes and control characters."""
    if not path or path.startswith("/") or "\\" in path or _CONTROL.search(path):
        raise UnsafePathError(f"unsafe storage path {path!r}: use a relative path of plain segments")
    for segment in path.split("/"):
        if segment in {"", ".", ".."} or not _SEGMENT.match(segment):
            raise UnsafePathError(f"unsafe storage path {path!r}: bad segment {segment!r}")
    return path


def guidance_token(guidance: float) -> str:
    return f"{guidance:g}"


@dataclass(frozen=True)
class RunLayout:
    prefix: str
    run_id: str

    def __post_init__(self) -> None:
        check_relative_path(f"{self.prefix}/{self.run_id}")

    @property
    def root(self) -> str:
        return f"{self.prefix}/{self.run_id}"

    def of_input(self, name: str | None) -> RunLayout:
        """The folder of one of ``spec.inputs`` (None: the one input of ``spec.input``, at the run's root)."""
        return self if name is None else RunLayout(self.root, name)

    def _path(self, relative: str) -> str:
        return check_relative_path(f"{self.root}/{relative}")

    def cell_stem(self, quant: str, guidance: float, seed: int, several_seeds: bool) -> str:
        stem = f"{quant}_gs{guidance_token(guidance)}"
        return f"{stem}_s{seed}" if several_seeds else stem

    def image(self, quant: str, guidance: float, seed: int, several_seeds: bool = False) -> str:
        return self._path(f"{self.cell_stem(quant, guidance, seed, several_seeds)}.png")

    def latents(self, quant: str, guidance: float, seed: int, several_seeds: bool = False) -> str:
        return self._path(f"latents/{self.cell_stem(quant, guidance, seed, several_seeds)}.npy")

    def prompt_embedding(self, key: str) -> str:
        """A prompt's embeddings, encoded once per audit (``runner/fluxaudit_runner/prompt_cache.py``)."""
        return self._path(f"embeddings/{key}.safetensors")

    def partial(self, quant: str) -> str:
        return self._path(f"partials/{quant}.json")

    @property
    def spec_json(self) -> str:
        """The audit document the run was started from (``fluxaudit report DIR`` reads it)."""
        return self._path("spec.json")

    @property
    def input_image(self) -> str:
        """The image as the pipeline received it (resized): what quality is measured on."""
        return self._path("inputs/image.png")

    @property
    def input_mask(self) -> str:
        return self._path("inputs/mask.png")

    @property
    def diff_sheet(self) -> str:
        return self._path("diff_sheet.png")

    @property
    def drift_chart(self) -> str:
        return self._path("drift.png")

    @property
    def report_md(self) -> str:
        return self._path("REPORT.md")

    @property
    def report_json(self) -> str:
        return self._path("report.json")

    @property
    def contact_sheet(self) -> str:
        return self._path("contact_sheet.png")

    @property
    def latency_chart(self) -> str:
        return self._path("latency.png")

    @property
    def fill_chart(self) -> str:
        return self._path("fill.png")

    @property
    def report_csv(self) -> str:
        return self._path("report.csv")

    @property
    def report_html(self) -> str:
        return self._path("report.html")
