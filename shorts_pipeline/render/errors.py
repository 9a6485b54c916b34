"""Errors raised by the media engine.

Each names the item it is about and what to do, so the CLI and the Dagster UI can show the
message as it is.
"""

from __future__ import annotations


class MediaError(Exception):
    """Base class for every error the media engine raises."""


class ToolMissingError(MediaError):
    """ffmpeg or ffprobe is not installed."""


class ProbeError(MediaError):
    """A file could not be read as a usable video clip."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class RenderError(MediaError):
    """ffmpeg failed while rendering; carries the tail of its log."""

    def __init__(self, what: str, returncode: int, log_tail: str) -> None:
        super().__init__(f"{what} failed (ffmpeg exit {returncode}): {log_tail.strip()[-1500:]}")
        self.returncode = returncode
        self.log_tail = log_tail
