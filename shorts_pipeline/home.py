"""Where state lives: one home folder (SHORTS_HOME, default ./.shorts) read at call time."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = ".shorts"


def shorts_home() -> Path:
    """The home folder, created on first use; read from the environment at call time."""
    home = Path(os.environ.get("SHORTS_HOME") or DEFAULT_HOME).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def catalog_url() -> str:
    return os.environ.get("SHORTS_CATALOG_URL") or f"sqlite:///{shorts_home() / 'catalog.db'}"


def media_url() -> str:
    return os.environ.get("SHORTS_MEDIA_URL") or str(shorts_home() / "media")


def library_dir() -> Path:
    return Path(os.environ.get("SHORTS_LIBRARY") or shorts_home() / "library")


def cache_dir() -> Path:
    path = shorts_home() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def locks_dir() -> Path:
    """Lock files: one per project being rendered, one per live worker (see locks.py)."""
    path = shorts_home() / "locks"
    path.mkdir(parents=True, exist_ok=True)
    return path


def dagster_home() -> Path:
    path = Path(os.environ.get("DAGSTER_HOME") or shorts_home() / "dagster")
    path.mkdir(parents=True, exist_ok=True)
    return path
