"""Storage backends behind one interface (``base.Storage``); ``open_storage`` picks one for a spec.

The Google libraries load only when a bucket is used: the errors every caller catches
live in ``base``, free of them.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..contract import Env
from ..spec import StorageSpec
from .base import CredentialsError, NotFound, RunLocked, Storage, StorageUnavailable, UnsupportedURI
from .local import LocalStorage

__all__ = [
    "CredentialsError",
    "LocalStorage",
    "NotFound",
    "RunLocked",
    "Storage",
    "StorageUnavailable",
    "UnsupportedURI",
    "open_bucket",
    "open_storage",
]


def open_bucket(bucket: str) -> Storage:
    """Firebase Storage on ``bucket`` with the machine's credentials (see ``gcp_auth``)."""
    from .firebase import FirebaseStorage

    # How long one storage call keeps retrying through an outage before the group gives up.
    retry_seconds = float(os.environ.get(Env.STORAGE_RETRY_SECONDS, "120"))
    return FirebaseStorage(bucket, retry_deadline_seconds=retry_seconds)


def open_storage(spec: StorageSpec, local_root: str | Path | None = None) -> Storage:
    """A local folder when one is given (local mode, demo) or no bucket is set;
    Firebase Storage (``storage.bucket``) otherwise."""
    if local_root is not None or spec.bucket is None:
        return LocalStorage(local_root or "fluxaudit-out")
    return open_bucket(spec.bucket)
