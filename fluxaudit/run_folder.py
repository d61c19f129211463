"""What a run folder holds, and who may write it: one spec, its partials, one writer.

A run id names one audit.  A second spec under an existing run id is refused (naming what
differs) before anything is written; a partial written by another spec, or from other input
bytes, is refused rather than mixed in; a partial that cannot be read is a clear, permanent
error naming the object — set aside only when asked, never deleted.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from .contract import timestamp
from .errors import PermanentError
from .layout import RunLayout
from .results import Partial, ResumeConflict
from .spec import FluxAudit, SpecError, parse_document
from .storage import NotFound, Storage


class CorruptPartial(PermanentError):
    """A stored partial that is not a partial this build reads (truncated, empty, another schema)."""

    def __init__(self, path: str, reason: str):
        self.path = path
        super().__init__(
            f"{path} is not a partial FluxAudit can read ({reason}): retrying cannot help; rerun with "
            "--set-aside-corrupt to move it aside (kept, renamed) and recompute that group"
        )


def parse_partial(raw: bytes, path: str) -> Partial:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptPartial(path, f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CorruptPartial(path, f"a JSON {type(data).__name__}, not an object")
    try:
        return Partial.from_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise CorruptPartial(path, f"{where}: {first['msg']}") from None
    except ValueError as exc:  # an unknown schemaVersion
        raise CorruptPartial(path, str(exc)) from None


def read_partial(storage: Storage, path: str) -> Partial | None:
    """The partial at ``path``, None when absent; ``CorruptPartial`` when unreadable."""
    try:
        raw = storage.read_bytes(path)
    except NotFound:
        return None
    return parse_partial(raw, path)


def set_aside(storage: Storage, path: str) -> str:
    """Keep an unreadable partial under a new name beside it, so its group starts afresh."""
    aside = path.removesuffix(".json") + f".corrupt-{timestamp().replace(':', '')}.json"
    storage.write_bytes(aside, storage.read_bytes(path), "application/json")
    return aside


def check_belongs(partial: Partial, audit: FluxAudit, path: str, input_sha256: str | None = None) -> None:
    """Refuse a partial of another spec, or of other input bytes under the same URIs."""
    if partial.fingerprint != audit.spec.fingerprint():
        raise ResumeConflict(
            f"{path} was written by a different spec (fingerprint {partial.fingerprint}, now "
            f"{audit.spec.fingerprint()}): give this audit a new runId or use another output folder"
        )
    if input_sha256 is not None and partial.input_sha256 is not None and partial.input_sha256 != input_sha256:
        raise ResumeConflict(
            f"{path} was computed from other input bytes (sha256 {partial.input_sha256[:12]}…, now "
            f"{input_sha256[:12]}…) under the same URIs: its cells would mix two inputs; give this audit a new "
            "runId or use another output folder"
        )


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def bind_spec(storage: Storage, layout: RunLayout, audit: FluxAudit, document: dict[str, Any]) -> None:
    """Store ``document`` as the run's spec, or check it is the one already stored there."""
    try:
        raw = storage.read_bytes(layout.spec_json)
    except NotFound:
        storage.write_json(layout.spec_json, document)
        return
    try:
        stored = parse_document(json.loads(raw), layout.spec_json)
    except (SpecError, ValueError) as exc:
        raise PermanentError(
            f"{layout.spec_json} is not an audit document ({exc}); move it away or use another runId"
        ) from None
    mine = audit.spec.model_copy(update={"run_id": None}).model_dump(by_alias=True, mode="json")
    theirs = stored.spec.model_copy(update={"run_id": None}).model_dump(by_alias=True, mode="json")
    differing = _differences(mine, theirs)
    if stored.metadata.name != audit.metadata.name:
        differing.insert(0, "metadata.name")
    if differing:
        raise ResumeConflict(
            f"run {layout.run_id} in {storage.description} belongs to another spec ({stored.metadata.name}; "
            f"differs in {', '.join(f'spec.{d}' if d != 'metadata.name' else d for d in differing)}): "
            "give this audit its own runId or another output folder"
        )


def partials_of(audit: FluxAudit, storage: Storage) -> dict[str, Partial | None]:
    """Every group's partial, each checked to belong to ``audit`` and all to one input."""
    layout = RunLayout(audit.spec.storage.prefix, audit.run_id())
    out: dict[str, Partial | None] = {}
    for label in audit.spec.group_labels():
        path = layout.partial(label)
        partial = read_partial(storage, path)
        if partial is not None:
            check_belongs(partial, audit, path)
        out[label] = partial
    digests = {p.input_sha256 for p in out.values() if p is not None and p.input_sha256}
    if len(digests) > 1:
        groups = ", ".join(f"{label} {p.input_sha256[:12]}…" for label, p in out.items() if p and p.input_sha256)
        raise ResumeConflict(f"the groups of run {layout.run_id} were computed from different input bytes ({groups})")
    return out
