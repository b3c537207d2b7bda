"""The project's user-error type: a problem with an input or output file, written for the user.

Every command maps it (and its subclasses, such as ``mimo.core.images.ImageError``) to a
one-line ``error: ...`` and exit code 2."""

from __future__ import annotations

from pathlib import Path


class MimoDataError(ValueError):
    """A problem with a dataset or record file, described so that the user can fix it.

    The message starts with the file it concerns (when known), then names the field and
    what was expected, e.g. ``imagesTr/case_001_0000.nii.gz: not a valid NIfTI file (...)``.

    Attributes:
        path: the file or folder concerned, or None.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        self.detail = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class ImageError(MimoDataError):
    """An image or volume cannot be turned into pixels; the message names the file and why."""


class ImageWarning(UserWarning):
    """Pixels were read, but something the user should know happened (e.g. NaN voxels)."""


def describe(exc: BaseException) -> str:
    """``Type: message`` of a third-party exception on one line, for the end of a user-facing message."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())
