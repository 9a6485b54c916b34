"""`shorts doctor`: is this machine ready to make videos? Each failed check says how to fix it.

A required check that fails means videos cannot be made (the command exits 1); the others
are for optional parts (colour emoji, the OpenAI and fal.ai keys, the network source).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from shorts_pipeline.home import library_dir, shorts_home

REQUIRED_FILTERS = [
    "xfade",
    "loudnorm",
    "ebur128",
    "overlay",
    "boxblur",
    "acrossfade",
    "amix",
    "adelay",
    "ass",  # burned subtitles (libass)
]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True

    def to_json(self) -> dict[str, object]:
        """The object `shorts doctor --json` prints for this check (stable keys)."""
        return {
            "name": self.name,
            "ok": self.ok,
            "required": self.required,
            "detail": self.detail,
            "fix": self.fix if not self.ok else "",
        }


def _install_hint(debian: str, brew: str) -> str:
    if platform.system() == "Darwin":
        return f"brew install {brew}"
    return f"sudo apt-get install -y {debian}   (or run `make demo`, which installs it)"


def run_checks() -> list[Check]:
    """Every check, in order; one that breaks (an unusable SHORTS_HOME under it, say)
    counts as failed and the others still run."""
    return [_safely(*entry) for entry in CHECKS]


def _safely(name: str, check: Callable[[], Check], fix: Callable[[], str], required: bool) -> Check:
    try:
        return check()
    except Exception as err:
        detail = f"could not check: {type(err).__name__}: {err}"
        return Check(name, False, detail, fix(), required=required)


def _home_fix() -> str:
    home = os.environ.get("SHORTS_HOME") or "./.shorts"
    return f"set SHORTS_HOME to a writable folder (now {home})"


def _ffmpeg() -> Check:
    path = shutil.which("ffmpeg")
    if not path:
        return Check("ffmpeg", False, "not found on PATH", _install_hint("ffmpeg", "ffmpeg"))
    version = subprocess.run([path, "-version"], capture_output=True, text=True, check=False)
    first = version.stdout.splitlines()[0] if version.stdout else "unknown version"
    encoders = subprocess.run(
        [path, "-hide_banner", "-encoders"], capture_output=True, text=True, check=False
    ).stdout
    filters = subprocess.run(
        [path, "-hide_banner", "-filters"], capture_output=True, text=True, check=False
    ).stdout
    missing = [f for f in REQUIRED_FILTERS if not re.search(rf"\s{f}\s", filters)]
    if "libx264" not in encoders:
        missing.append("libx264 encoder")
    if missing:
        return Check(
            "ffmpeg",
            False,
            f"{first}; missing {', '.join(missing)}",
            "install a full ffmpeg build: " + _install_hint("ffmpeg", "ffmpeg"),
        )
    return Check("ffmpeg", True, first)


def _ffprobe() -> Check:
    path = shutil.which("ffprobe")
    if not path:
        return Check("ffprobe", False, "not found on PATH", _install_hint("ffmpeg", "ffmpeg"))
    return Check("ffprobe", True, path)


def _fonts() -> Check:
    from shorts_pipeline.render import text

    try:
        found = text.find_fonts()
    except Exception as err:  # FontMissingError carries its own advice
        return Check(
            "fonts",
            False,
            str(err),
            _install_hint(
                "fonts-nanum fonts-dejavu-core fonts-noto-color-emoji",
                "--cask font-nanum-gothic font-noto-color-emoji",
            ),
        )
    names = [os.path.basename(f.path) for f in found.text]
    if found.emoji is None:
        return Check(
            "fonts",
            False,
            f"{', '.join(names)}; no colour emoji font",
            _install_hint("fonts-noto-color-emoji", "--cask font-noto-color-emoji"),
            required=False,
        )
    return Check("fonts", True, ", ".join([*names, os.path.basename(found.emoji.path)]))


def _espeak() -> Check:
    """The offline voice: narration is on by default, so its library is required."""
    from shorts_pipeline.resources.espeak_lib import library_path

    path = library_path()
    if not path:
        return Check(
            "espeak-ng",
            False,
            "libespeak-ng not found (the offline voice of every narrated video)",
            _install_hint("espeak-ng", "espeak-ng"),
        )
    return Check("espeak-ng", True, path)


def _openai_key() -> Check:
    """Only projects with writer/voice 'openai' need a key; its value is never shown."""
    if os.environ.get("OPENAI_API_KEY"):
        base = os.environ.get("OPENAI_BASE_URL", "api.openai.com")
        return Check("openai", True, f"OPENAI_API_KEY is set; endpoint {base}", required=False)
    return Check(
        "openai",
        False,
        "OPENAI_API_KEY is not set: the offline writer and espeak-ng are used",
        "export OPENAI_API_KEY=... (and OPENAI_BASE_URL for Ollama/vLLM) to use an LLM",
        required=False,
    )


def _fal_key() -> Check:
    """Only extend projects with provider 'fal' need a key; its value is never shown."""
    if os.environ.get("FAL_KEY"):
        queue = os.environ.get("FAL_QUEUE_URL", "https://queue.fal.run")
        return Check("fal.ai", True, f"FAL_KEY is set; queue {queue}", required=False)
    return Check(
        "fal.ai",
        False,
        "FAL_KEY is not set: extend videos are made as offline storyboards",
        "export FAL_KEY=... to generate extend segments with fal.ai models",
        required=False,
    )


def _home() -> Check:
    home = shorts_home()
    try:
        with tempfile.NamedTemporaryFile(dir=home):
            pass
    except OSError as err:
        return Check(
            "SHORTS_HOME",
            False,
            f"{home} is not writable: {err}",
            "set SHORTS_HOME to a writable folder",
        )
    free = shutil.disk_usage(home).free / 1e9
    if free < 1:
        return Check(
            "SHORTS_HOME",
            False,
            f"{home}: only {free:.1f} GB free",
            "free disk space (renders need ~1 GB of scratch)",
        )
    return Check("SHORTS_HOME", True, f"{home} ({free:.0f} GB free)")


def _catalog() -> Check:
    from shorts_pipeline.resources.catalog import CatalogResource

    try:
        count = len(CatalogResource().list_projects())
    except Exception as err:
        return Check(
            "catalog",
            False,
            f"cannot open: {err}",
            "check SHORTS_CATALOG_URL (any SQLAlchemy URL) or unset it for SQLite"
            if os.environ.get("SHORTS_CATALOG_URL")
            else _home_fix(),
        )
    return Check("catalog", True, f"{count} projects")


def _media_store() -> Check:
    from shorts_pipeline.resources.media_store import MediaStoreResource

    try:
        where = MediaStoreResource().check()
    except Exception as err:  # MediaStoreError names the place and the cause
        return Check(
            "media store",
            False,
            str(err),
            "check SHORTS_MEDIA_URL, S3_ENDPOINT_URL and the AWS_* credentials"
            if os.environ.get("SHORTS_MEDIA_URL")
            else _home_fix(),
        )
    return Check("media store", True, f"{where} (write, read back, delete)")


def _library() -> Check:
    path = library_dir()
    if not path.is_dir():
        return Check(
            "clip library",
            False,
            f"{path} does not exist",
            "run `shorts demo` to create the demo library, or use `shorts add --library DIR`",
            required=False,
        )
    count = sum(1 for p in path.iterdir() if p.is_file() and p.suffix.lower() != ".json")
    return Check("clip library", True, f"{path} ({count} files)", required=False)


def _network(host: str = "www.youtube.com", port: int = 443, timeout: float = 3.0) -> Check:
    """Can the yt-dlp source reach the internet? Offline, the local library still works."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        return Check(
            "network source",
            False,
            f"{host}:{port} unreachable ({type(err).__name__}: {err})",
            "offline: use the local library (`shorts add --search-source library`), or set a "
            "proxy for the yt-dlp source",
            required=False,
        )
    return Check("network source", True, f"{host}:{port} reachable", required=False)


def _dagster() -> Check:
    """The Dagster instance the CLI and `dagster dev` share (its runs, its event log)."""
    import dagster as dg

    from shorts_pipeline.home import dagster_home

    os.environ.setdefault("DAGSTER_HOME", str(dagster_home()))
    try:
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs_count()
    except Exception as err:
        return Check(
            "dagster",
            False,
            f"cannot open the instance in {os.environ.get('DAGSTER_HOME')}: "
            f"{type(err).__name__}: {err}",
            "fix $DAGSTER_HOME/dagster.yaml (its storage settings), or unset DAGSTER_HOME to use "
            "SHORTS_HOME/dagster",
        )
    return Check("dagster", True, f"instance in {os.environ['DAGSTER_HOME']} ({runs} runs)")


def _ffmpeg_fix() -> str:
    return _install_hint("ffmpeg", "ffmpeg")


# name, check, the fix to give when the check itself breaks, and whether it is required.
CHECKS: list[tuple[str, Callable[[], Check], Callable[[], str], bool]] = [
    ("ffmpeg", _ffmpeg, _ffmpeg_fix, True),
    ("ffprobe", _ffprobe, _ffmpeg_fix, True),
    ("fonts", _fonts, lambda: _install_hint("fonts-nanum", "font-nanum-gothic"), True),
    ("espeak-ng", _espeak, lambda: _install_hint("espeak-ng", "espeak-ng"), True),
    ("openai", _openai_key, lambda: "unset OPENAI_API_KEY and OPENAI_BASE_URL", False),
    ("fal.ai", _fal_key, lambda: "unset FAL_KEY and FAL_QUEUE_URL", False),
    ("SHORTS_HOME", _home, _home_fix, True),
    ("catalog", _catalog, _home_fix, True),
    ("media store", _media_store, _home_fix, True),
    ("dagster", _dagster, _home_fix, True),
    ("clip library", _library, _home_fix, False),
    ("network source", _network, lambda: "set HTTPS_PROXY for the yt-dlp source", False),
]
