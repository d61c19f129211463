"""The runner's own error: input one group cannot use (a bad GGUF file, an unreadable image)."""

from __future__ import annotations

from fluxaudit.errors import PermanentError, TransientError


class GroupInputError(PermanentError):
    """Input this group cannot use: retrying will not help; the message names the file or field."""


class DownloadUnavailable(TransientError):
    """A model file that is not cached while the hub cannot be reached: a retry may find it."""
