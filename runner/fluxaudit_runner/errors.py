"""The runner's own error: input one group cannot use (a bad GGUF file, an unreadable image)."""

from __future__ import annotations

from fluxaudit.errors import PermanentError


class GroupInputError(PermanentError):
    """Input this group cannot use: retrying will not help; the message names the file or field."""
