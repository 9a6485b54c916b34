"""Run ffmpeg as a child process: argument lists only, progress parsed, temp output cleaned up.

`run_ffmpeg` is the single place the engine starts ffmpeg for renders. It reads ffmpeg's
`-progress` key=value stream from stdout to report a 0..1 fraction, keeps stderr in a
temporary file (a pipe could fill and deadlock a long render) and returns its tail when
ffmpeg fails. If the caller is interrupted (KeyboardInterrupt, a Dagster run being
cancelled), ffmpeg is terminated before the exception travels on.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Sequence
from typing import IO

from shorts_pipeline.render.errors import RenderError
from shorts_pipeline.render.probe import ffmpeg_binary

ProgressFn = Callable[[float], None]


def run_ffmpeg(
    args: Sequence[str],
    *,
    what: str,
    total_seconds: float | None = None,
    progress: ProgressFn | None = None,
) -> str:
    """Run `ffmpeg <args>`; return its stderr log. Raise RenderError naming `what` on failure."""
    cmd = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-y"]
    if progress is not None:
        cmd += ["-progress", "pipe:1", "-nostats"]
    cmd += list(args)
    with tempfile.TemporaryFile(mode="w+t", encoding="utf-8", errors="replace") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE if progress is not None else subprocess.DEVNULL,
            stderr=log,
            text=True,
            bufsize=1,  # line-buffered: progress arrives as ffmpeg writes it
        )
        try:
            if progress is not None and proc.stdout is not None:
                _follow_progress(proc.stdout, total_seconds, progress)
            returncode = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        log.seek(0)
        text = log.read()
    if returncode != 0:
        raise RenderError(what, returncode, text[-4000:])
    return text


def _follow_progress(stream: IO[str], total_seconds: float | None, progress: ProgressFn) -> None:
    last = -1.0
    for line in iter(stream.readline, ""):
        key, _, value = line.strip().partition("=")
        if key == "out_time_us" and total_seconds:
            try:
                seconds = int(value) / 1_000_000
            except ValueError:
                continue
            fraction = max(0.0, min(1.0, seconds / total_seconds))
            if fraction - last >= 0.01:
                last = fraction
                progress(fraction)
        elif key == "progress" and value == "end":
            progress(1.0)
