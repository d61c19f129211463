"""Storage backends behind one interface; ``open_storage`` picks one for a spec."""

from __future__ import annotations

from pathlib import Path

from ..spec import StorageSpec
from .base import NotFound, Storage
from .local import LocalStorage

__all__ = ["LocalStorage", "NotFound", "Storage", "open_storage"]


def open_storage(spec: StorageSpec, local_root: str | Path | None = None) -> Storage:
    """A local folder when one is given (local mode, demo) or no bucket is set;
    the bucket otherwise."""
    if local_root is not None or spec.bucket is None:
        return LocalStorage(local_root or "fluxaudit-out")
    raise NotImplementedError(
        f"storage.bucket={spec.bucket!r}: the Firebase Storage backend is not part of this build yet; "
        "run locally with --out DIR (spec.storage.bucket is then ignored)"
    )
