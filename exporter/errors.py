"""User-facing errors: what was wrong, what was expected, what to do.

Library code raises :class:`UserError` for bad input; the CLI prints it as one paragraph (no
traceback) and exits with its ``exit_code``: 2 for bad input and for :class:`CannotRunHere` (work
this machine cannot do), 1 for :class:`FailedVerdict`. Code decides by these types, never by the
text of a message.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A problem with the user's input, carrying a hint that names the fix."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class CannotRunHere(UserError):
    """Work this machine cannot do (TensorRT, a GPU or the profile's GPU missing): exit 2, and callers
    that can go on without it (a latency sweep's other cells) catch this type, never a message."""


class UntrustedFile(UserError):
    """A file read back (a run folder's record, a summary, a sidecar, a repository's record) that is
    refused: a path leaving its folder, a document off its schema, bytes that differ from their
    recorded sha256 (docs/security.md). Exit 2; a run stops at once (never records it as a failed
    stage), before it writes or deletes anything more."""


class FailedVerdict(UserError):
    """A check that ran and failed (e.g. a graph TensorRT's parser would refuse): exit 1."""

    exit_code = 1


def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The names in ``choices`` closest to ``name`` (for 'did you mean' hints)."""
    choices = list(choices)
    found = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if not found:
        found = [c for c in choices if name.lower() in c.lower()][:n]
    return found
