"""Clip sources: where ranking and b-roll footage comes from.

Every source answers `search(terms, limit)` with `ClipCandidate`s (metadata only) and
`fetch(candidate, dest_dir)` with a local file for a chosen clip. The local library is the
offline default: a folder of clips with an optional catalog file (catalog.json or
catalog.csv: id, file, title, views, likes, published, tags).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PureWindowsPath
from typing import Any, Protocol
from urllib.parse import urlsplit
from urllib.request import url2pathname

import dagster as dg
from pydantic import Field

from shorts_pipeline.home import cache_dir, library_dir
from shorts_pipeline.keys import safe_segment
from shorts_pipeline.models import ClipCandidate
from shorts_pipeline.render.errors import ProbeError
from shorts_pipeline.render.probe import MediaInfo, probe_clip

# Bumped when probing judges files differently, so cached verdicts are not reused.
_PROBE_CACHE_VERSION = 2
VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".3gp"}


class ClipSourceError(Exception):
    """A source could not be searched (missing folder, unreachable service)."""


class NoMatchesError(ClipSourceError):
    pass


@dataclass
class SearchOutcome:
    candidates: list[ClipCandidate]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)


class ClipSource(Protocol):
    name: str

    def search(self, terms: list[str], limit: int) -> SearchOutcome: ...

    def fetch(self, candidate: ClipCandidate, dest_dir: Path) -> Path: ...


class LocalLibrarySource(dg.ConfigurableResource):
    """Clips from a local folder (default: SHORTS_HOME/library), searched by title and tags.

    A `catalog.json` or `catalog.csv` beside the clips gives titles, views, likes, publish
    dates and tags; clips without an entry are titled from their file name. Every clip is
    probed (duration, size, rotation, pixel aspect, frame rate, audio); files that are not
    usable videos are reported in the outcome's `skipped` with the reason.
    """

    directory: str | None = Field(default=None, description="Library folder.")

    @property
    def name(self) -> str:
        return "library"

    @property
    def path(self) -> Path:
        return Path(self.directory) if self.directory else library_dir()

    def search(self, terms: list[str], limit: int = 50) -> SearchOutcome:
        root = self.path
        if not root.is_dir():
            raise ClipSourceError(
                f"the clip library {root} does not exist; run `shorts demo` to create a demo "
                "library, or pass --library DIR with a folder of video clips"
            )
        entries, refused = _catalog_entries(root)
        files = sorted(
            p for p in root.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
        )
        if not files:
            raise ClipSourceError(
                f"the clip library {root} has no video files ({', '.join(sorted(VIDEO_SUFFIXES))})"
            )
        wanted = _tokens(" ".join(terms))
        outcome = SearchOutcome(candidates=[], skipped=refused)
        matches: list[tuple[int, ClipCandidate]] = []
        for file in files:
            entry = entries.get(file.name, {})
            title = str(entry.get("title") or _title_from_name(file.stem))
            tags = [str(t) for t in entry.get("tags", [])]
            hits = len(wanted & (_tokens(title) | _tokens(" ".join(tags)))) if wanted else 1
            if hits == 0:
                continue
            try:
                info = _probe_cached(file)
            except ProbeError as err:
                outcome.skipped.append((file.name, err.reason))
                continue
            matches.append((hits, _candidate(root, file, entry, title, tags, info)))
        if not matches:
            detail = f"; skipped: {_describe(outcome.skipped)}" if outcome.skipped else ""
            raise NoMatchesError(
                f"no clip in {root} matches {' '.join(terms)!r} (searched titles and tags of "
                f"{len(files)} files{detail}); try other keywords or add clips to the library"
            )
        matches.sort(key=lambda m: (-m[0], -(m[1].views or 0)))
        outcome.candidates = [c for _, c in matches[:limit]]
        return outcome

    def fetch(self, candidate: ClipCandidate, dest_dir: Path) -> Path:
        """Copy the clip into `dest_dir`; only files directly inside this library are read."""
        source = _library_file(candidate, self.path)
        if not source.is_file():
            raise ClipSourceError(f"clip {candidate.id} is gone from the library ({source})")
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / f"{safe_segment(candidate.id)}{source.suffix.lower()}"
        if not dest.exists():
            tmp = dest.with_name(dest.name + ".partial")
            shutil.copyfile(source, tmp)
            tmp.replace(dest)
        return dest


def _library_file(candidate: ClipCandidate, root: Path) -> Path:
    """The library file a candidate's `file://` URL names; refused unless it is a file
    directly inside `root` (a changed URL must not read /etc/passwd or another folder)."""
    parts = urlsplit(candidate.url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise ClipSourceError(
            f"clip {candidate.id} has the URL {candidate.url!r}, not a file of the library {root}"
        )
    source = Path(url2pathname(parts.path))
    library = root.resolve()
    if not source.is_absolute() or source.parent.resolve() != library or source.name in ("", ".."):
        raise ClipSourceError(
            f"clip {candidate.id} points outside the library {library} ({source}); "
            "only files directly inside the library folder are read"
        )
    return library / source.name


def _catalog_entries(
    root: Path,
) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str]]]:
    """Catalog rows keyed by file name, and the rows refused with why; an unreadable catalog
    is an error worth stopping for.

    A row's `file` must be the plain name of a file in the library folder: a path (absolute,
    with `/`, `\\` or `..`) is refused, so a catalog cannot make the library read files
    elsewhere or pin its metadata on a clip of the same name."""
    json_path, csv_path = root / "catalog.json", root / "catalog.csv"
    rows: list[dict[str, Any]] = []
    try:
        if json_path.exists():
            data = json.loads(json_path.read_text(encoding="utf-8"))
            rows = data["clips"] if isinstance(data, dict) else data
        elif csv_path.exists():
            with csv_path.open(newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    row["tags"] = [
                        t.strip() for t in re.split(r"[;|,]", row.get("tags") or "") if t.strip()
                    ]
                    rows.append(row)
    except (json.JSONDecodeError, KeyError, TypeError, csv.Error) as err:
        name = json_path if json_path.exists() else csv_path
        raise ClipSourceError(f"the library catalog {name} cannot be read: {err}") from err
    out: dict[str, dict[str, Any]] = {}
    refused: list[tuple[str, str]] = []
    catalog_name = json_path.name if json_path.exists() else csv_path.name
    for row in rows:
        if not isinstance(row, dict):
            raise ClipSourceError(
                f"the library catalog {root / catalog_name} cannot be read: each entry must be an "
                f"object with id, file, title…, not {type(row).__name__}"
            )
        file = str(row.get("file") or "").removeprefix("./")
        if not file:
            continue
        if _is_plain_name(file):
            out[file] = row
        else:
            refused.append(
                (
                    f"{catalog_name} entry {file!r}",
                    "refused: `file` must be the name of a file in the library folder, "
                    "not a path (no '/', '\\', '..' or drive)",
                )
            )
    return out, refused


def _is_plain_name(file: str) -> bool:
    return (
        file not in (".", "..")
        and not any(ch in file for ch in "/\\\0")
        and not PureWindowsPath(file).drive
    )


def _candidate(
    root: Path, file: Path, entry: dict[str, Any], title: str, tags: list[str], info: MediaInfo
) -> ClipCandidate:
    return ClipCandidate(
        id=str(entry.get("id") or file.stem),
        source="library",
        # The file as it sits in the library (a symlinked clip keeps the library's path), so
        # `fetch` can check that it reads from the library and nowhere else.
        url=(root.resolve() / file.name).as_uri(),
        title=title,
        duration=round(info.duration, 3),
        width=info.display_width,
        height=info.display_height,
        views=_int(entry.get("views")),
        likes=_int(entry.get("likes")),
        published=_date(entry.get("published")),
        thumbnail=None,
        tags=tags,
    )


def _probe_cached(file: Path) -> MediaInfo:
    """Probe once per (path, size, mtime); failures are cached too, with their reason."""
    cache_file = cache_dir() / "probe-cache.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, json.JSONDecodeError):
        cache = {}
    stat = file.stat()
    tag = f"{_PROBE_CACHE_VERSION}|{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    hit = cache.get(tag)
    if hit is not None:
        if "error" in hit:
            raise ProbeError(str(file), hit["error"])
        return _info_from_json(hit)
    try:
        info = probe_clip(file)
        cache[tag] = _info_to_json(info)
    except ProbeError as err:
        cache[tag] = {"error": err.reason}
        raise
    finally:
        tmp = cache_file.with_name(cache_file.name + ".partial")
        tmp.write_text(json.dumps(cache))
        tmp.replace(cache_file)
    return info


def _info_to_json(info: MediaInfo) -> dict[str, Any]:
    data = dict(info.__dict__)
    data["sar"] = f"{info.sar.numerator}/{info.sar.denominator}"
    return data


def _info_from_json(data: dict[str, Any]) -> MediaInfo:
    from fractions import Fraction

    values = dict(data)
    values["sar"] = Fraction(values["sar"])
    return MediaInfo(**values)


def _tokens(text: str) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    # Plural-insensitive: "skills" finds "skill".
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words}


def _title_from_name(stem: str) -> str:
    return re.sub(r"[_\-.]+", " ", stem).strip().capitalize() or stem


def _int(value: Any) -> int | None:
    try:
        return int(float(value)) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _date(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _describe(skipped: list[tuple[str, str]]) -> str:
    return "; ".join(f"{item}: {reason}" for item, reason in skipped[:5])
