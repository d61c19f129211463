"""Firebase Storage (a GCS bucket) behind the Storage interface.

Every call goes through one retry policy — exponential backoff with jitter
(google.api_core's Retry) on 429, 5xx and connection errors, bounded by a
deadline — and then fails with ``StorageUnavailable`` naming the operation and
object (never a URL, token or key).  Uploads are single whole-object requests,
so a failed upload leaves the previous object intact: readers of a partial JSON
see the old one or the new one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import google.auth.credentials
import google.auth.exceptions
import requests
from google.api_core import exceptions as gexc
from google.api_core import retry as api_retry

from .base import CredentialsError, NotFound, RunLocked, Storage, StorageUnavailable
from .gcp_auth import load_credentials, signing_credentials

T = TypeVar("T")

MIN_SIGNED_HOURS = 1
MAX_SIGNED_HOURS = 168  # V4 signed URLs live at most 7 days
PUBLIC_ENDPOINT = "https://storage.googleapis.com"

_TRANSIENT = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    requests.ConnectionError,
    requests.Timeout,
    ConnectionError,
    TimeoutError,
)


class _Conflict(Exception):
    """A generation precondition failed (HTTP 412)."""


def check_expiry_hours(hours: float) -> float:
    if not MIN_SIGNED_HOURS <= hours <= MAX_SIGNED_HOURS:
        raise ValueError(
            f"signed URL expiry {hours} h is outside {MIN_SIGNED_HOURS}…{MAX_SIGNED_HOURS} h "
            "(V4 signed URLs last at most 7 days): fix storage.signedUrlHours"
        )
    return hours


def _firebase_bucket(bucket: str, credentials: google.auth.credentials.Credentials) -> Any:
    import firebase_admin
    from firebase_admin import credentials as fcreds
    from firebase_admin import storage as fstorage

    class Credential(fcreds.Base):
        def __init__(self, inner: google.auth.credentials.Credentials):
            self._inner = inner

        def get_credential(self) -> google.auth.credentials.Credentials:
            return self._inner

        @property
        def project_id(self) -> str | None:
            return getattr(self._inner, "project_id", None)

    name = f"fluxaudit-{bucket}-{id(credentials):x}"
    try:
        app = firebase_admin.get_app(name)
    except ValueError:
        options = {"storageBucket": bucket}
        project = getattr(credentials, "project_id", None)
        if project:
            options["projectId"] = project
        app = firebase_admin.initialize_app(Credential(credentials), options, name=name)
    return fstorage.bucket(app=app)


class FirebaseStorage(Storage):
    signed_urls_expire = True

    def __init__(
        self,
        bucket: str,
        *,
        credentials: google.auth.credentials.Credentials | None = None,
        retry_deadline_seconds: float = 120.0,
        iam_endpoint: str | None = None,
    ):
        self.bucket_name = bucket
        self.description = f"gs://{bucket}"
        self._credentials = credentials or load_credentials()
        self._bucket = _firebase_bucket(bucket, self._credentials)
        self._iam_endpoint = iam_endpoint
        self._signer: google.auth.credentials.Signing | None = None
        self._retry = api_retry.Retry(
            predicate=api_retry.if_exception_type(*_TRANSIENT),
            initial=0.25,
            maximum=10.0,
            multiplier=2.0,
            timeout=retry_deadline_seconds,
        )
        self._deadline = retry_deadline_seconds
        #: the generation of each object as this writer last read or wrote it (0: it did not exist;
        #: None: the server named none, so its writes go without a precondition).
        self._generations: dict[str, int | None] = {}

    def _on_bucket(self, bucket: str) -> FirebaseStorage:
        """The same credentials and policy on another bucket (gs:// inputs elsewhere)."""
        if bucket == self.bucket_name:
            return self
        return FirebaseStorage(
            bucket,
            credentials=self._credentials,
            retry_deadline_seconds=self._deadline,
            iam_endpoint=self._iam_endpoint,
        )

    def _call(self, what: str, path: str, fn: Callable[[], T]) -> T:
        try:
            return self._retry(fn)()
        except gexc.NotFound:
            raise NotFound(path) from None
        except gexc.PreconditionFailed:
            raise _Conflict(path) from None
        except google.auth.exceptions.RefreshError as exc:
            # The token endpoint refused the credentials (invalid_grant: a revoked or deleted key).
            # Retrying cannot help: name the source to replace, never the secret.
            reason = exc.args[0] if exc.args and isinstance(exc.args[0], str) else type(exc).__name__
            raise CredentialsError(
                f"{what} gs://{self.bucket_name}/{path}: Google refused the credentials ({reason.split(':')[0]}): "
                "the service-account key was revoked or deleted, or the Workload Identity binding is gone; "
                "replace the Secret or fix the binding"
            ) from None
        except gexc.RetryError as exc:
            cause = exc.cause.__class__.__name__ if exc.cause else "timeout"
            raise StorageUnavailable(
                f"{what} gs://{self.bucket_name}/{path} still failing after {self._deadline:.0f} s of retries ({cause})"
            ) from None
        except gexc.GoogleAPICallError as exc:
            raise StorageUnavailable(
                f"{what} gs://{self.bucket_name}/{path} failed: HTTP {exc.code} {exc.__class__.__name__}"
            ) from None

    # -- Storage interface ------------------------------------------------
    def write_bytes(
        self, path: str, data: bytes, content_type: str = "application/octet-stream", *, guard: bool = False
    ) -> None:
        """``guard``: a generation precondition (``ifGenerationMatch``), so a second writer of the same
        partial fails with ``RunLocked`` instead of overwriting the first's cells."""
        blob = self._bucket.blob(self.checked(path))
        expected = self._generations.get(path, 0) if guard else None
        try:
            self._call(
                "upload",
                path,
                lambda: blob.upload_from_string(
                    data, content_type=content_type, retry=None, if_generation_match=expected
                ),
            )
        except _Conflict:
            raise RunLocked(
                f"gs://{self.bucket_name}/{path} was changed by another writer since this one read it: two runs of "
                "one group at once; this one stops (the other keeps the run)"
            ) from None
        self._generations[path] = None if blob.generation is None else int(blob.generation)

    def read_bytes(self, path: str) -> bytes:
        """One request: the object's generation comes back in the download's headers (the guard's start)."""
        blob = self._bucket.blob(self.checked(path))
        try:
            data = self._call("download", path, lambda: blob.download_as_bytes(retry=None))
        except NotFound:
            self._generations[path] = 0
            raise
        self._generations[path] = None if blob.generation is None else int(blob.generation)
        return data

    def exists(self, path: str) -> bool:
        blob = self._bucket.blob(self.checked(path))
        return self._call("stat", path, lambda: blob.exists(retry=None))

    def list(self, prefix: str) -> list[str]:
        folder = self.checked(prefix).rstrip("/") + "/"
        return self._call(
            "list", prefix, lambda: sorted(b.name for b in self._bucket.list_blobs(prefix=folder, retry=None))
        )

    def location(self, path: str) -> str:
        return f"gs://{self.bucket_name}/{self.checked(path)}"

    def signed_url(self, path: str, expiry_hours: float = 72) -> str:
        """A V4 GET URL valid for ``expiry_hours`` (1 h … 7 days, checked before any call)."""
        check_expiry_hours(expiry_hours)
        blob = self._bucket.blob(self.checked(path))
        if self._signer is None:
            self._signer = signing_credentials(self._credentials, self._iam_endpoint)
        return blob.generate_signed_url(
            version="v4",
            expiration=dt.timedelta(hours=expiry_hours),
            method="GET",
            credentials=self._signer,
            api_access_endpoint=PUBLIC_ENDPOINT,
        )

    def read_bucket_object(self, bucket: str, name: str) -> bytes:
        return self._on_bucket(bucket).read_bytes(name)
