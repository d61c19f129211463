"""Storage backends behind one interface; ``open_storage`` picks one for a spec."""

from __future__ import annotations

import os
from pathlib import Path

from ..spec import StorageSpec
from .base import NotFound, Storage
from .local import LocalStorage

__all__ = ["LocalStorage", "NotFound", "Storage", "open_storage"]


def open_storage(spec: StorageSpec, local_root: str | Path | None = None) -> Storage:
    """A local folder when one is given (local mode, demo) or no bucket is set;
    Firebase Storage (``storage.bucket``) otherwise."""
    if local_root is not None or spec.bucket is None:
        return LocalStorage(local_root or "fluxaudit-out")
    from .firebase import FirebaseStorage  # google libraries load only when a bucket is used

    # How long one storage call keeps retrying through an outage before the group gives up.
    retry_seconds = float(os.environ.get("FLUXAUDIT_STORAGE_RETRY_SECONDS", "120"))
    return FirebaseStorage(spec.bucket, signed_url_hours=spec.signed_url_hours, retry_deadline_seconds=retry_seconds)
