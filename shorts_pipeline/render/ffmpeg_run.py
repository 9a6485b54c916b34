"""Run ffmpeg as a child process: argument lists only, progress parsed, failures explained.

`run_ffmpeg` is the single place the engine starts ffmpeg for renders. It reads ffmpeg's
`-progress` key=value stream from stdout to report a 0..1 fraction, keeps stderr in a
temporary file (a pipe could fill and deadlock a long render) and, when ffmpeg fails, raises
an error whose first line says why in one sentence (the log's first error line, or a full
disk) with the tail of the log below it. If the caller is interrupted (KeyboardInterrupt, a
Dagster run being cancelled), ffmpeg is killed before the exception travels on; if the
caller's process dies outright (SIGKILL, the OOM killer), the kernel kills ffmpeg with it
(Linux parent-death signal), so no orphan keeps rendering.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from shorts_pipeline.render.errors import RenderError
from shorts_pipeline.render.probe import ffmpeg_binary

ProgressFn = Callable[[float], None]

# errno values that mean "the disk (or this process's share of it) is full".
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DISK_MESSAGES = {
    "No space left on device": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
    "File too large": errno.EFBIG,
}
# A log line that says what went wrong (ffmpeg's last words, "Conversion failed!", do not).
_ERROR_LINE = re.compile(
    r"error|invalid|no such|not found|cannot|could not|unable|does not|unknown|unrecognized|"
    r"too large|no space|permission denied|failed",
    re.IGNORECASE,
)
_CONTEXT_PREFIX = re.compile(r"^\[[^\]]+ @ 0x[0-9a-f]+\]\s*")


class FfmpegError(RenderError):
    """ffmpeg failed. The message's first line is one sentence (what failed, and why); the
    tail of ffmpeg's log follows on the next lines for the Dagster UI."""

    def __init__(self, what: str, returncode: int, log_tail: str, reason: str) -> None:
        super().__init__(what, returncode, log_tail)
        tail = log_tail.strip()[-1500:]
        self.args = (f"{what} failed (ffmpeg exit {returncode}): {reason}\n{tail}",)
        self.reason = reason


class DiskFullError(FfmpegError):
    """ffmpeg could not write: the disk is full, or the file outgrew the size limit."""

    def __init__(self, what: str, returncode: int, log_tail: str, reason: str) -> None:
        super().__init__(what, returncode, log_tail, reason)
        self.args = (f"{what} failed: {reason}",)  # the log adds nothing to this


def run_ffmpeg(
    args: Sequence[str],
    *,
    what: str,
    total_seconds: float | None = None,
    progress: ProgressFn | None = None,
) -> str:
    """Run `ffmpeg <args>`; return its stderr log. Raise FfmpegError (DiskFullError when the
    disk is full) naming `what` on failure."""
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
            preexec_fn=_die_with_parent if _PRCTL is not None else None,
        )
        try:
            if progress is not None and proc.stdout is not None:
                _follow_progress(proc.stdout, total_seconds, progress)
            returncode = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
        log.seek(0)
        text = log.read()
    if returncode != 0:
        raise _failure(what, returncode, text[-4000:], _output_of(args))
    return text


def disk_problem(err_no: int, path: str | os.PathLike[str]) -> str:
    """One sentence for a write that failed with ENOSPC/EDQUOT/EFBIG at `path`: what is
    full, where, and what to do."""
    if err_no == errno.EFBIG:
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        limit = "no limit" if soft == resource.RLIM_INFINITY else _size(soft)
        return (
            f"file too large: writing {path} went past the largest file this process may "
            f"write ({limit}; `ulimit -f`): raise the limit"
        )
    folder = _existing_folder(Path(path))
    try:
        free = f"{_size(shutil.disk_usage(folder).free)} free"
    except OSError:
        free = "free space unknown"
    quota = " (disk quota exceeded)" if err_no == errno.EDQUOT else ""
    return (
        f"no space left on device{quota}: the disk holding {folder} is full ({free}): "
        f"free some space there, or move that folder to a bigger disk"
    )


def _failure(what: str, returncode: int, log: str, output: str | None) -> FfmpegError:
    err_no = next((code for text, code in _DISK_MESSAGES.items() if text in log), None)
    if returncode == -signal.SIGXFSZ:  # the file size limit kills a process that ignores it
        err_no = errno.EFBIG
    if err_no is not None:
        where = output or "its output"
        return DiskFullError(what, returncode, log, disk_problem(err_no, where))
    return FfmpegError(what, returncode, log, _reason(log, returncode))


def _reason(log: str, returncode: int) -> str:
    lines = [_CONTEXT_PREFIX.sub("", line).strip() for line in log.splitlines()]
    lines = [line for line in lines if line and line != "Conversion failed!"]
    errors = [line for line in lines if _ERROR_LINE.search(line)]
    if returncode < 0:
        try:
            return f"ffmpeg was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"ffmpeg was killed by signal {-returncode}"
    if errors:
        return errors[0][:300]
    return lines[-1][:300] if lines else "ffmpeg printed nothing"


def _output_of(args: Sequence[str]) -> str | None:
    """ffmpeg's (last) output: its last argument, unless that is a pipe or null output."""
    if not args or args[-1].startswith(("-", "pipe:")):
        return None
    return os.path.abspath(args[-1])


def _existing_folder(path: Path) -> Path:
    folder = path.parent if not path.is_dir() else path
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


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


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    return getattr(libc, "prctl", None)


# Loaded once here: the function that runs in the child between fork and exec must not
# import or allocate anything that a lock held by another thread could guard.
_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1
_SIGKILL = int(signal.SIGKILL)


def _die_with_parent() -> None:
    """In the child, before exec: the kernel kills ffmpeg when the thread that started it
    dies, so a SIGKILLed worker leaves no ffmpeg behind."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)
