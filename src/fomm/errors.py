"""Errors caused by a user's input. The command line catches :class:`UserError` alone and prints
its message as one line (exit status 2); anything else is a bug and keeps its traceback.

Each specific error is raised where the problem starts, and its message names the file, key or
option at fault and what is wrong with it.
"""

from __future__ import annotations

__all__ = [
    "BadDataWarning",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DeviceError",
    "OutputPathError",
    "UserError",
    "VideoReadError",
    "VideoWriteError",
]


class UserError(ValueError):
    """A missing or unusable input, or a bad option value: the message says what and where."""


class ConfigError(UserError):
    """A config file or dictionary that does not fit the schema."""


class CheckpointError(UserError):
    """A checkpoint that cannot be read or does not fit its model."""


class DataError(UserError):
    """A dataset, a file of it, or an argument about data that cannot be used."""


class VideoReadError(DataError):
    """A video (file, GIF, image strip or frame folder) that is missing, corrupt or empty."""


class VideoWriteError(DataError):
    """A video that cannot be written (bad frames, unsupported format, encoder failure)."""


class DeviceError(UserError):
    """A compute device that was asked for but is not available on this machine."""


class OutputPathError(UserError):
    """An output path that cannot be written (missing folder, a folder where a file is meant)."""


class BadDataWarning(UserWarning):
    """A bad file skipped because the dataset was built with ``skip_bad=True``."""
