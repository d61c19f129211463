"""Bounds on what an audit reads: documents, input files, decoded images.

Every limit is a constant here, with the reason it exists, so the CLI, the runner and the
tests agree on one number.  A value past a limit is refused with the field or file named,
before anything is stored.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from .errors import PermanentError

#: a FluxAudit document: the CRD's own limit on an object is ~1.5 MB (etcd); a spec is a few KB.
MAX_DOCUMENT_BYTES = 1_000_000
#: values in a loaded document, counting every alias each time it is used: a YAML "billion laughs"
#: (anchors of anchors) expands to billions and is refused here, before anything walks it.
MAX_DOCUMENT_NODES = 100_000
#: an input image or mask file: a 12-megapixel JPEG is ~5 MB, a 24-bit PNG of 25 megapixels ~75 MB.
MAX_INPUT_BYTES = 128 * 2**20
#: decoded pixels of an input (50 MP): the pipeline resizes to ``maxSide`` anyway; a 144-MP PNG
#: would take gigabytes to decode for nothing.
MAX_INPUT_PIXELS = 50_000_000
#: the shorter side of an input image: below this there is nothing to inpaint (one latent is 16 px).
MIN_INPUT_SIDE = 64
#: image and mask aspect ratios may differ by this much (rounding of a resized mask) before it is refused.
ASPECT_TOLERANCE = 0.01


_NOT_FILES = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
    (stat.S_ISDIR, "a directory"),
)


class LimitError(PermanentError):
    """An input past one of the limits above; the message names it and the limit."""


def check_document_size(text: str | bytes, source: str) -> None:
    size = len(text.encode() if isinstance(text, str) else text)
    if size > MAX_DOCUMENT_BYTES:
        raise LimitError(f"{source}: {size} bytes is more than a FluxAudit document may be ({MAX_DOCUMENT_BYTES})")


def count_nodes(doc: Any, budget: int = MAX_DOCUMENT_NODES) -> int:
    """Values in ``doc``, a shared (aliased) value counted every time it is reached; raises past ``budget``
    without walking further (the walk itself is what an alias bomb would blow up)."""
    count = 0
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        count += 1
        if count > budget:
            raise LimitError(f"the document expands to more than {budget} values (YAML anchors and aliases?): refused")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return count


def read_regular_file(path: Path, what: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """A regular file's bytes, at most ``limit``: no devices (``/dev/zero``), FIFOs (a hang) or folders."""
    st = os.stat(path)  # FileNotFoundError is the caller's to name
    if not stat.S_ISREG(st.st_mode):
        kind = next(
            (name for test, name in _NOT_FILES if test(st.st_mode)),
            "not a regular file",
        )
        raise LimitError(f"{what}: {path} is {kind}; give the path of an image file")
    if st.st_size > limit:
        raise LimitError(f"{what}: {path} is {st.st_size} bytes, more than the {limit} an input may be")
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:  # grew while read
        raise LimitError(f"{what}: {path} is more than the {limit} bytes an input may be")
    return data


def check_image_size(size: tuple[int, int], what: str) -> None:
    width, height = size
    if width * height > MAX_INPUT_PIXELS:
        raise LimitError(
            f"{what} is {width}×{height} ({width * height / 1e6:.0f} MP), more than {MAX_INPUT_PIXELS / 1e6:.0f} MP: "
            "downscale it first (the audit resizes to spec.maxSide anyway)"
        )
    if min(width, height) < MIN_INPUT_SIDE:
        raise LimitError(f"{what} is {width}×{height}: its shorter side must be at least {MIN_INPUT_SIDE} px")


def check_same_aspect(image: tuple[int, int], mask: tuple[int, int]) -> bool:
    """Whether a mask of ``mask`` size belongs to an image of ``image`` size (same aspect ratio)."""
    return abs(image[0] / image[1] - mask[0] / mask[1]) <= ASPECT_TOLERANCE * image[0] / image[1]
