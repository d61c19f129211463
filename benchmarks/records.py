"""Where benchmark results go: one JSON line per run, appended, so repeated runs keep their history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def append_jsonl(folder: Path, name: str, record: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
    return path
