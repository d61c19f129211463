"""Local-folder storage: the embedded default for ``fluxaudit run`` and the demo."""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path

from .base import NotFound, Storage


class LocalStorage(Storage):
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.description = f"file://{self.root}"

    def _fs(self, path: str) -> Path:
        return self.root / self.checked(path)

    def write_bytes(self, path: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Write to a temporary file, fsync, rename: a crash leaves the old object or the new one."""
        target = self._fs(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read_bytes(self, path: str) -> bytes:
        try:
            return self._fs(path).read_bytes()
        except FileNotFoundError:
            raise NotFound(path) from None

    def exists(self, path: str) -> bool:
        return self._fs(path).is_file()

    def list(self, prefix: str) -> list[str]:
        folder = self._fs(prefix)
        if not folder.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix() for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
        )

    def link(self, path: str, from_dir: str, expiry_hours: float = 0) -> str:
        return posixpath.relpath(self.checked(path), from_dir)

    def location(self, path: str) -> str:
        return str(self._fs(path))

    def signed_url(self, path: str, expiry_hours: float = 0) -> str:
        return self._fs(path).as_uri()
