"""Errors and warnings of the data layer.

Every error names the file (or folder) at fault and what is wrong with it, so that a bad video
in a dataset of thousands is found from the message alone.
"""

from __future__ import annotations

__all__ = ["DataError", "VideoReadError", "VideoWriteError", "BadDataWarning"]


class DataError(ValueError):
    """A dataset, a file of it, or an argument about data that cannot be used."""


class VideoReadError(DataError):
    """A video (file, GIF, image strip or frame folder) that is missing, corrupt or empty."""


class VideoWriteError(DataError):
    """A video that cannot be written (bad frames, unsupported format, encoder failure)."""


class BadDataWarning(UserWarning):
    """A bad file skipped because the dataset was built with ``skip_bad=True``."""
