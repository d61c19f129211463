"""Installation defaults for FluxAudit specs (Helm values ``runner.*`` and ``storage.bucket``).

A FluxAudit's own values always win; the installation fills what the author left out; the
spec model's defaults fill the rest.  Sections (``runner``, ``storage``, …) merge key by
key, but values inside them are taken whole: a FluxAudit's ``nodeSelector`` replaces the
installation's rather than adding labels to it.
"""

from __future__ import annotations

import copy
from typing import Any

#: spec sections merged key by key; everything else is an atomic value.
SECTIONS = frozenset({"runner", "storage", "quality", "compileCheck", "model", "input"})


def merge_defaults(spec: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    for key, value in defaults.items():
        if key not in out or out[key] is None:
            out[key] = copy.deepcopy(value)
        elif key in SECTIONS and isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = {**copy.deepcopy(value), **out[key]}
    return out
