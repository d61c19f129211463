"""The storage interface runner, operator and report share.

Two backends implement it: a local folder (``file://``, the default) and Firebase
Storage (``gs://``).  Objects are written whole — a reader sees the old object or
the new one, never half of one — which is what makes the cell-by-cell partial
JSON safe to resume from.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

from ..layout import check_relative_path


class NotFound(FileNotFoundError):
    """The object does not exist."""


class Storage(ABC):
    """Object storage keyed by relative paths of plain segments."""

    #: a name for logs and the report (never includes credentials).
    description: str = ""

    @abstractmethod
    def write_bytes(self, path: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    @abstractmethod
    def read_bytes(self, path: str) -> bytes: ...

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Every object path under ``prefix`` (a folder path), sorted."""

    @abstractmethod
    def link(self, path: str, from_dir: str, expiry_hours: float) -> str:
        """How REPORT.md in ``from_dir`` refers to ``path``: relative locally, signed URLs
        (valid ``expiry_hours``) in the cloud."""

    def write_json(self, path: str, obj: Any) -> None:
        self.write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode(), "application/json")

    def read_json(self, path: str) -> Any:
        return json.loads(self.read_bytes(path))

    def read_json_or_none(self, path: str) -> Any | None:
        """Readers tolerate a missing object (a group that never started)."""
        try:
            return self.read_json(path)
        except NotFound:
            return None

    @staticmethod
    def checked(path: str) -> str:
        return check_relative_path(path)
