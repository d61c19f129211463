"""Local-folder storage: the embedded default for ``fluxaudit run`` and the demo."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .base import NotFound, RunLocked, Storage


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class LocalStorage(Storage):
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.description = f"file://{self.root}"

    def _fs(self, path: str) -> Path:
        return self.root / self.checked(path)

    def write_bytes(
        self, path: str, data: bytes, content_type: str = "application/octet-stream", *, guard: bool = False
    ) -> None:
        """Write to a temporary file, fsync, rename: a crash leaves the old object or the new one.
        (``guard`` needs nothing more here: one writer holds the run folder's lock.)"""
        target = self._fs(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from the user's group
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

    @contextlib.contextmanager
    def writer_lock(self, folder: str, name: str = "run") -> Iterator[None]:
        """One writer per run folder (or per group, ``name``): a second ``fluxaudit run`` into it fails at
        once, naming the holder, instead of interleaving its partials and images with the first's."""
        lock_path = self._fs(folder) / f".{name}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                raise RunLocked(
                    f"{self._fs(folder)} ({name}) is being written by {holder}: wait for it to finish"
                ) from None
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()} on {socket.gethostname()}")
            f.flush()
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def location(self, path: str) -> str:
        return str(self._fs(path))

    def signed_url(self, path: str, expiry_hours: float = 0) -> str:
        return self._fs(path).as_uri()
