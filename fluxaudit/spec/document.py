"""YAML or JSON → a validated FluxAudit, or a ``SpecError`` listing every problem with its field path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import FluxAuditError
from ..limits import LimitError, check_document_size, count_nodes
from .audit import FluxAudit


class SpecError(FluxAuditError):
    """A spec that cannot run; ``errors`` are (field path, message) pairs."""

    def __init__(self, source: str, errors: list[tuple[str, str]]):
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  {path}: {msg}" for path, msg in errors)
        super().__init__(f"{source}: {len(errors)} error(s)\n{lines}")


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # pydantic inserts tags like "function-after[...]" for validators; they are not fields.
            if "[" in part or part.startswith("function-"):
                continue
            out += f".{part}" if out else part
    return out or "(document)"


_TYPES = {"float_type": "a number", "int_type": "an integer", "bool_type": "true or false"}


def _friendly(err: dict[str, Any]) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown field: remove it or check its spelling (kubectl explain fa.spec lists the fields)"
    if err["type"] == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        return f"{err.get('input')!r} does not match {pattern}"
    if err["type"] == "too_short":
        return "must not be empty"
    if err["type"] in _TYPES:
        return (
            f"{err.get('input')!r} is not {_TYPES[err['type']]}: write it as the API server would take it (no quotes)"
        )
    return msg


def errors_from(exc: ValidationError) -> list[tuple[str, str]]:
    raw = exc.errors()
    # pydantic adds "too short after validation" for a list whose items failed: the item errors say it.
    locs = [tuple(e["loc"]) for e in raw]
    kept = [
        e
        for e in raw
        if not (
            e["type"] == "too_short"
            and any(len(o) > len(e["loc"]) and o[: len(e["loc"])] == tuple(e["loc"]) for o in locs)
        )
    ]
    return [(_field_path(tuple(e["loc"])), _friendly(e)) for e in kept]


def parse_document(doc: Any, source: str = "<spec>") -> FluxAudit:
    """Validate a loaded YAML/JSON document; raise SpecError listing every problem."""
    if not isinstance(doc, dict):
        raise SpecError(source, [("(document)", "expected a mapping with apiVersion, kind, metadata and spec")])
    try:
        count_nodes(doc)  # before anything walks it: an alias bomb stops here
    except LimitError as exc:
        raise SpecError(source, [("(document)", str(exc))]) from None
    try:
        return FluxAudit.model_validate(doc)
    except ValidationError as exc:
        raise SpecError(source, errors_from(exc)) from None


def parse_text(text: str, source: str) -> FluxAudit:
    """One YAML (or JSON) document → a validated FluxAudit."""
    try:
        check_document_size(text, source)
    except LimitError as exc:
        raise SpecError(source, [("(document)", str(exc))]) from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise SpecError(source, [("(yaml)", str(exc).replace("\n", " "))]) from None
    if len(docs) != 1:
        raise SpecError(source, [("(document)", f"expected one FluxAudit document, found {len(docs)}")])
    return parse_document(docs[0], source)


def load_file(path: str | Path) -> FluxAudit:
    """A YAML/JSON file, or ``env:NAME`` for a document held in an environment variable
    (how a Kubernetes Job receives its spec without another object to grant RBAC on)."""
    if isinstance(path, str) and path.startswith("env:"):
        name = path.removeprefix("env:")
        if name not in os.environ:
            raise SpecError(path, [("(env)", f"environment variable {name} is not set")])
        return parse_text(os.environ[name], path)
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(str(path), [("(file)", f"cannot read: {exc.strerror}")]) from None
    return parse_text(text, str(path))
