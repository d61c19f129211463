"""The storage interface runner, operator, report and CLI share, and its errors.

Two backends implement it: a local folder (the default) and Firebase Storage (a GCS
bucket).  Objects are written whole — a reader sees the old object or the new one,
never half of one — which is what makes the cell-by-cell partial JSON safe to resume
from.  Callers use only this interface: nothing outside the storage package asks which
backend it holds.  The errors live here, free of the Google libraries, so every layer
can catch them by type.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlparse

from ..errors import FluxAuditError, PermanentError, TransientError
from ..layout import check_relative_path
from ..limits import read_regular_file


class NotFound(FileNotFoundError, FluxAuditError):
    """The object does not exist."""


class StorageUnavailable(TransientError):
    """Storage kept failing past the retry deadline; the message names the operation and object."""


class CredentialsError(PermanentError):
    """Credentials that cannot be loaded or were refused; the message names the source, never the secret."""


class RunLocked(TransientError):
    """Another writer holds the run folder; retry once it is done."""


class UnsupportedURI(PermanentError):
    """A URI this backend cannot read (a ``gs://`` input with local storage, an unknown scheme)."""


def read_file_uri(uri: str) -> bytes:
    """The bytes of a ``file://`` URI (a path on this machine): a regular file, within the input size limit."""
    path = Path(unquote(urlparse(uri).path))
    try:
        return read_regular_file(path, uri)
    except FileNotFoundError:
        raise NotFound(uri) from None


def gs_object_name(uri_path: str) -> str:
    """``/a/b.png`` of ``gs://bucket/a/b.png`` → ``a/b.png``."""
    return posixpath.normpath(uri_path).lstrip("/")


class Storage(ABC):
    """Object storage keyed by relative paths of plain segments."""

    #: a name for logs and the report (never includes credentials).
    description: str = ""
    #: whether :meth:`signed_url` gives a link that expires (a bucket's V4 URL) or a lasting one (a file).
    signed_urls_expire: ClassVar[bool] = False

    @abstractmethod
    def write_bytes(
        self, path: str, data: bytes, content_type: str = "application/octet-stream", *, guard: bool = False
    ) -> None:
        """Write the object whole.  ``guard``: fail with ``RunLocked`` if another writer changed (or created)
        it since this storage object last read or wrote it — read-modify-write objects, the partials."""

    @abstractmethod
    def read_bytes(self, path: str) -> bytes: ...

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Every object path under ``prefix`` (a folder path), sorted."""

    @abstractmethod
    def location(self, path: str) -> str:
        """Where the object is, as a person names it: a filesystem path or ``gs://bucket/path``."""

    @abstractmethod
    def signed_url(self, path: str, expiry_hours: float) -> str:
        """A URL that opens the object: a V4 signed URL valid ``expiry_hours`` in a bucket, a
        ``file://`` URL locally (which does not expire: ``signed_urls_expire`` says which)."""

    def writer_lock(self, folder: str, name: str = "run") -> contextlib.AbstractContextManager[None]:
        """Held while one process writes a run folder.  Buckets have no lock to hold: their writers
        are kept apart by generation preconditions on each object instead (see the backend)."""
        return contextlib.nullcontext()

    def read_uri(self, uri: str) -> bytes:
        """An input named by URI: ``file://`` from this machine, ``gs://`` through a bucket backend."""
        parsed = urlparse(uri)
        if parsed.scheme == "file":
            return read_file_uri(uri)
        if parsed.scheme == "gs":
            return self.read_bucket_object(parsed.netloc, gs_object_name(parsed.path))
        raise UnsupportedURI(f"unsupported URI scheme {parsed.scheme!r}: use gs:// or file://")

    def read_bucket_object(self, bucket: str, name: str) -> bytes:
        """An object of any bucket these credentials can read; only bucket backends can."""
        raise UnsupportedURI(
            f"gs://{bucket}/{name} needs Firebase storage: set spec.storage.bucket and run without --out"
        )

    def write_json(self, path: str, obj: Any, *, guard: bool = False) -> None:
        self.write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode(), "application/json", guard=guard)

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


__all__ = [
    "CredentialsError",
    "NotFound",
    "RunLocked",
    "Storage",
    "StorageUnavailable",
    "UnsupportedURI",
    "gs_object_name",
    "read_file_uri",
]
