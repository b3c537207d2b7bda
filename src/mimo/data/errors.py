"""The one error type of the data builder: a user-facing problem with an input or output file."""

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
