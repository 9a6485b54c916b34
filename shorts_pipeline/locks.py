"""Who is working in SHORTS_HOME: one run per project at a time, and which temp files are in use.

Both are `flock`s on files under SHORTS_HOME/locks, which the kernel releases when the
holder dies, however it dies (SIGKILL and the OOM killer included): a lock is never stale.

- `project_lock(key, owner)`: one run of a project at a time. Two runs of the same project
  would race on its media keys: the video in the store could come from one run and the
  `VideoRecord` Dagster recorded from the other. The holder writes its pid, owner (the run
  id) and start time into the file, so whoever is refused can say who holds it. The same
  owner may take it again (the CLI holds it around the run whose resources take it too).
- `working()`: registers this process as a live worker (a file in locks/workers). Temp files
  and scratch folders are made by live workers after they registered, so anything
  temporary that changed last before the oldest live worker registered was left by a
  process that died mid-write; `sweep_stale_temp` removes it. A run sweeps when it starts,
  so a crashed render is cleaned by the next run; `shorts doctor` sweeps too.

Temporary names, everywhere the pipeline writes: `*.partial*` (renders, media store copies,
downloads), `.tmp-*` (atomic writes), `*.tmp`, `.*.mix.wav`/`.*.limited.wav` (the render's
audio pass), and, at the top of the cache, the scratch folders the stages make with
`tempfile.mkdtemp` (`video-*`, `segments-*`, `narration-*`, `slides-*`, `fetch-*`,
`shorts-*`) and yt-dlp's `downloads/.incoming/*`; in the system's temp folder,
`shorts-subs-*` and `shorts-tts-*` a day after they were last changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from shorts_pipeline.home import locks_dir
from shorts_pipeline.keys import validate_project_key

# Scratch folders the stages make at the top of the cache (tempfile.mkdtemp: prefix + 8).
SCRATCH_DIR = re.compile(r"^(video|segments|narration|slides|fetch|shorts)-[a-z0-9_]{8}$")
# Files that are only ever an unfinished write, wherever they are.
TEMP_FILE = re.compile(r"\.partial(\.|$)|^\.tmp-|^\..+\.tmp$|^\..+\.(mix|limited)\.wav$")
SYSTEM_SCRATCH_DIR = re.compile(r"^shorts-(subs|tts)-[a-z0-9_]{8}$")
SYSTEM_TEMP_MAX_AGE = 24 * 3600
INCOMING = ".incoming"  # yt-dlp downloads land here, then move into the cache
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class LockHolder:
    pid: int
    owner: str
    since: float
    host: str

    def describe(self) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(self.since))
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"pid {self.pid}{where}, run {self.owner[:8]}, since {when}"


class ProjectBusyError(RuntimeError):
    """Another run of the same project holds its lock."""

    def __init__(self, key: str, holder: LockHolder | None) -> None:
        who = f" ({holder.describe()})" if holder else ""
        super().__init__(
            f"{key} is already rendering{who}: wait for that run to finish, or stop it"
        )
        self.key = key
        self.holder = holder


@dataclass
class _Held:
    owner: str
    file: IO[str]
    count: int


_held: dict[Path, _Held] = {}
_held_guard = threading.Lock()


@contextlib.contextmanager
def project_lock(
    key: str,
    owner: str,
    *,
    wait_seconds: float = 0.0,
    on_wait: Callable[[LockHolder | None], None] | None = None,
) -> Iterator[None]:
    """Hold project `key`'s lock for `owner` (a run id) inside the block.

    Busy: wait up to `wait_seconds` (calling `on_wait` once with the holder), then raise
    ProjectBusyError naming the holder. The same owner in the same process re-enters."""
    path = _project_lock_path(key)
    with _held_guard:
        held = _held.get(path)
        if held is not None and held.owner == owner:
            held.count += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            _release(path)
        return
    file = _acquire(path, key, wait_seconds, on_wait)
    file.seek(0)
    file.truncate()
    holder = {"pid": os.getpid(), "owner": owner, "since": time.time()}
    file.write(json.dumps({**holder, "host": socket.gethostname()}))
    file.flush()
    with _held_guard:
        _held[path] = _Held(owner, file, 1)
    try:
        yield
    finally:
        _release(path)


def project_lock_holder(key: str) -> LockHolder | None:
    """Who holds project `key`'s lock now, or None when nobody does."""
    path = _project_lock_path(key)
    if not path.exists():
        return None
    with open(path, "a+", encoding="utf-8") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(path)
        fcntl.flock(file, fcntl.LOCK_UN)
        return None


def _project_lock_path(key: str) -> Path:
    try:
        name = validate_project_key(key)
    except ValueError:  # a partition key that is not a project key still gets its own lock
        name = "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]
    return locks_dir() / f"project-{name}.lock"


def _acquire(
    path: Path,
    key: str,
    wait_seconds: float,
    on_wait: Callable[[LockHolder | None], None] | None,
) -> IO[str]:
    file = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held until _release
    deadline = time.monotonic() + wait_seconds
    told = False
    while True:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return file
        except BlockingIOError:
            holder = _read_holder(path)
            if time.monotonic() >= deadline:
                file.close()
                raise ProjectBusyError(key, holder) from None
            if not told and on_wait is not None:
                on_wait(holder)
                told = True
            time.sleep(POLL_SECONDS)
        except BaseException:
            file.close()
            raise


def _release(path: Path) -> None:
    with _held_guard:
        held = _held[path]
        held.count -= 1
        if held.count:
            return
        del _held[path]
    # The content stays: it is only read while the lock is held, and the next holder
    # rewrites it. Unlinking a lock file races with a process that just opened it.
    fcntl.flock(held.file, fcntl.LOCK_UN)
    held.file.close()


def _read_holder(path: Path) -> LockHolder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "null")
        return LockHolder(int(data["pid"]), str(data["owner"]), float(data["since"]), data["host"])
    except (OSError, ValueError, TypeError, KeyError):
        return None


# ---- live workers and stale temp files -------------------------------------------------


@dataclass
class _Registration:
    file: IO[str]
    path: Path
    count: int


_registrations: dict[Path, _Registration] = {}


@contextlib.contextmanager
def working() -> Iterator[None]:
    """Register this process as a live worker of SHORTS_HOME inside the block (re-entrant,
    thread-safe): `sweep_stale_temp` leaves alone whatever it may be writing."""
    folder = locks_dir() / "workers"
    with _held_guard:
        reg = _registrations.get(folder)
        if reg is not None:
            reg.count += 1
        else:
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
            # Locked before it gets its final name: a sweeper only looks at *.lock files,
            # and would take an unlocked one for a dead worker's.
            draft = folder / f".{name}.draft"
            file = open(draft, "w", encoding="utf-8")  # noqa: SIM115 - held until the end
            fcntl.flock(file, fcntl.LOCK_EX)
            file.write(str(os.getpid()))
            file.flush()
            final = folder / f"{name}.lock"
            os.replace(draft, final)
            _registrations[folder] = _Registration(file, final, 1)
    try:
        yield
    finally:
        with _held_guard:
            reg = _registrations[folder]
            reg.count -= 1
            if reg.count == 0:
                del _registrations[folder]
                reg.path.unlink(missing_ok=True)
                fcntl.flock(reg.file, fcntl.LOCK_UN)
                reg.file.close()


def oldest_live_worker() -> float | None:
    """When the longest-registered live worker registered (its file's ctime), or None when
    no worker is alive; removes the registrations of dead workers on the way."""
    folder = locks_dir() / "workers"
    oldest: float | None = None
    for path in folder.glob("*.lock") if folder.is_dir() else ():
        try:
            file = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            continue
        with file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                started = os.fstat(file.fileno()).st_ctime
                oldest = started if oldest is None else min(oldest, started)
                continue
            path.unlink(missing_ok=True)  # its process is gone
    return oldest


def sweep_stale_temp(scratch_root: Path, also: Iterable[Path] = ()) -> list[Path]:
    """Remove the temporary files and scratch folders that no live worker can be writing:
    those whose ctime (set by the kernel on every write, rename or touch; no program can set
    it back) is older than the oldest live worker. Scratch folders are looked for at the top
    of `scratch_root` (the cache); temp files there and under every folder of `also`.
    Returns what was removed."""
    removed: list[Path] = []
    with working():  # so the threshold is never later than now
        threshold = oldest_live_worker() or time.time()
        for root, scratch in [(scratch_root, True), *((r, False) for r in also)]:
            if root.is_dir():
                removed += _sweep(root, threshold, scratch)
    return removed + _sweep_system_temp()


def _sweep_system_temp() -> list[Path]:
    """The few scratch folders made in the system's temp folder (subtitles for libass, which
    wants a plain-ASCII path; speech synthesis) belong to no SHORTS_HOME, so no register
    says whether they are in use: they go once they are a day old."""
    removed: list[Path] = []
    cutoff = time.time() - SYSTEM_TEMP_MAX_AGE
    try:
        entries = list(os.scandir(tempfile.gettempdir()))
    except OSError:
        return removed
    for entry in entries:
        path = Path(entry.path)
        scratch = SYSTEM_SCRATCH_DIR.match(entry.name) and entry.is_dir(follow_symlinks=False)
        if scratch and _older(path, cutoff):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _sweep(root: Path, threshold: float, scratch: bool) -> list[Path]:
    removed: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        for name in list(dirs):
            path = here / name
            temporary = (
                (scratch and here == root and SCRATCH_DIR.match(name))
                or here.name == INCOMING
                or name.startswith(".tail-")
            )
            if temporary:
                dirs.remove(name)  # removed whole, or left whole: not walked
                if _older(path, threshold):
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
        for name in files:
            path = here / name
            if (TEMP_FILE.search(name) or here.name == INCOMING) and _older(path, threshold):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    return removed


def _older(path: Path, threshold: float) -> bool:
    try:
        return path.lstat().st_ctime < threshold
    except FileNotFoundError:
        return False
