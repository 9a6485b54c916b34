"""The local channel: the offline publisher, a folder of videos with an RSS and a JSON feed.

    <directory>/                 default SHORTS_HOME/channel
      items.json                 the one source of truth: every published item
      feed.json                  JSON Feed 1.1, public items, newest first
      feed.xml                   RSS 2.0, the same items
      videos/<project_key>/      <video_id>.mp4, <video_id>.jpg (thumbnail), <video_id>.srt
      .lock                      serialises publishers (fcntl.flock), across processes

Every file is written to a temporary name in its final folder and renamed into place, so a
reader (a web server, a podcast app, `shorts status`) never sees half a video or half a feed.
Both feeds are regenerated from items.json on every change. Publishing is exactly once per
idempotency key: a second attempt finds the item and returns the first result.

Serve the folder with any static web server and set `base_url` to where it is reachable; the
feeds' links are then `<base_url>/videos/...`. Without it the links are `file://` URLs, which
is what a local preview needs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import dagster as dg
from pydantic import Field

from shorts_pipeline.home import shorts_home
from shorts_pipeline.keys import UnsafeKeyError, validate_project_key
from shorts_pipeline.models import PublishedVideo, PublishRequest
from shorts_pipeline.resources.publishing import PublishError

PLATFORM = "local"
ITEMS_FILE = "items.json"
JSON_FEED_FILE = "feed.json"
RSS_FEED_FILE = "feed.xml"
LOCK_FILE = ".lock"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_NS = "http://search.yahoo.com/mrss/"
SRT_MIME = "application/x-subrip"

# XML 1.0 forbids most control characters even when escaped; they are dropped from feed text.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


class LocalChannelPublisher(dg.ConfigurableResource):
    """The offline channel: published videos are copied into a folder (default
    SHORTS_HOME/channel) and listed in an RSS 2.0 feed (feed.xml) and a JSON Feed 1.1
    (feed.json), newest first. Exactly once per idempotency key; safe with several
    publishers at once (a file lock); every write atomic. `base_url` is the public URL the
    folder is served at (default: file:// links). Private and unlisted videos are kept in the
    folder but left out of the feeds."""

    directory: str | None = Field(
        default=None, description="Channel folder; default SHORTS_HOME/channel."
    )
    base_url: str | None = Field(
        default=None,
        description="Public URL prefix the folder is served at, e.g. https://cdn.example.com/"
        "channel; default file:// URLs of the files.",
    )
    channel_title: str = Field(default="shorts_pipeline channel")

    @property
    def name(self) -> str:
        return PLATFORM

    def publish(
        self,
        request: PublishRequest,
        *,
        resume: str | None = None,
        checkpoint: Callable[[str], None] | None = None,
    ) -> PublishedVideo:
        """Copy the video, thumbnail and subtitles into the channel and list the video in the
        feeds; with an idempotency key already published, return that first publication.

        `resume` and `checkpoint` are part of the publisher contract and unused here: a local
        publication is a single locked step, there is nothing to resume.
        """
        root = self.root()
        with _locked(root):
            items = _read_items(root)
            existing = _find(items, request.idempotency_key)
            if existing is not None:
                if not (root / JSON_FEED_FILE).exists() or not (root / RSS_FEED_FILE).exists():
                    self._write_feeds(root, items)
                return _published_video(existing)
            item = self._add(root, request, seq=1 + max((i["seq"] for i in items), default=0))
            items.append(item)
            _write_atomic(root / ITEMS_FILE, _json_bytes({"version": 1, "items": items}))
            self._write_feeds(root, items)
        return _published_video(item)

    def find(self, idempotency_key: str) -> PublishedVideo | None:
        """The publication recorded for `idempotency_key`, if any."""
        root = self.root()
        with _locked(root):
            item = _find(_read_items(root), idempotency_key)
        return _published_video(item) if item else None

    def root(self) -> Path:
        """The channel folder, created on first use; SHORTS_HOME is read at call time."""
        path = Path(self.directory).expanduser() if self.directory else shorts_home() / "channel"
        path.mkdir(parents=True, exist_ok=True)
        return path.resolve()

    # ---- one publication ----------------------------------------------------------------

    def _add(self, root: Path, request: PublishRequest, *, seq: int) -> dict[str, Any]:
        try:
            key = validate_project_key(request.project_key)
        except UnsafeKeyError as err:
            raise PublishError(f"cannot publish to the local channel: {err}") from err
        sources = _sources(request)
        video_id = video_id_for(request.idempotency_key)
        folder = root / "videos" / key
        files: dict[str, dict[str, Any]] = {}
        for role, (source, suffix, mime) in sources.items():
            target = folder / f"{video_id}{suffix}"
            try:
                _copy_atomic(source, target)
            except OSError as err:
                raise PublishError(
                    f"copying {source} into the local channel ({target}) failed: {err}; "
                    "check free space and permissions, then publish again",
                    retryable=True,
                ) from err
            files[role] = {
                "path": target.relative_to(root).as_posix(),
                "size": target.stat().st_size,
                "type": mime,
            }
        published = _utc(request.publish_at) if request.publish_at else datetime.now(UTC)
        item: dict[str, Any] = {
            "seq": seq,
            "id": request.idempotency_key,
            "video_id": video_id,
            "project_key": key,
            "title": request.title,
            "description": request.description,
            "tags": list(request.tags),
            "language": request.language,
            "privacy": request.privacy,
            "synthetic_media": request.synthetic_media,
            "date_published": published.isoformat(),
            "files": files,
        }
        # What was returned the first time is what every later attempt gets back.
        item["urls"] = {role: self._url(root, f["path"]) for role, f in files.items()}
        item["feeds"] = {
            "json": self._url(root, JSON_FEED_FILE),
            "rss": self._url(root, RSS_FEED_FILE),
        }
        return item

    # ---- feeds --------------------------------------------------------------------------

    def _write_feeds(self, root: Path, items: list[dict[str, Any]]) -> None:
        listed = sorted(
            (i for i in items if i.get("privacy", "public") == "public"),
            key=lambda i: (_parse(i["date_published"]), i["seq"]),
            reverse=True,
        )
        _write_atomic(root / JSON_FEED_FILE, self._json_feed(root, listed))
        _write_atomic(root / RSS_FEED_FILE, self._rss_feed(root, listed))

    def _json_feed(self, root: Path, items: list[dict[str, Any]]) -> bytes:
        entries = []
        for item in items:
            files = item["files"]
            entry: dict[str, Any] = {
                "id": item["id"],
                "url": self._url(root, files["video"]["path"]),
                "title": item["title"],
                "content_text": item["description"],
                "date_published": _feed_date(item["date_published"]),
                "tags": item["tags"],
                "language": item["language"],
            }
            if "thumbnail" in files:
                entry["image"] = self._url(root, files["thumbnail"]["path"])
            entry["attachments"] = [
                {
                    "url": self._url(root, files[role]["path"]),
                    "mime_type": files[role]["type"],
                    "size_in_bytes": files[role]["size"],
                    **({"title": "Subtitles"} if role == "subtitles" else {}),
                }
                for role in ("video", "subtitles")
                if role in files
            ]
            entry["_shorts"] = {
                "video_id": item["video_id"],
                "project_key": item["project_key"],
                "synthetic_media": item["synthetic_media"],
            }
            entries.append(entry)
        feed = {
            "version": JSON_FEED_VERSION,
            "title": self.channel_title,
            "home_page_url": self._url(root, ""),
            "feed_url": self._url(root, JSON_FEED_FILE),
            "description": f"Videos published by shorts_pipeline to {self.channel_title}.",
            "items": entries,
        }
        return _json_bytes(feed)

    def _rss_feed(self, root: Path, items: list[dict[str, Any]]) -> bytes:
        ET.register_namespace("atom", ATOM_NS)
        ET.register_namespace("media", MEDIA_NS)
        rss = ET.Element("rss", {"version": "2.0"})
        channel = ET.SubElement(rss, "channel")
        _text(channel, "title", self.channel_title)
        _text(channel, "link", self._url(root, ""))
        _text(
            channel, "description", f"Videos published by shorts_pipeline to {self.channel_title}."
        )
        _text(channel, "lastBuildDate", format_datetime(datetime.now(UTC), usegmt=True))
        _text(channel, "generator", "shorts_pipeline")
        ET.SubElement(
            channel,
            f"{{{ATOM_NS}}}link",
            {"href": self._url(root, RSS_FEED_FILE), "rel": "self", "type": "application/rss+xml"},
        )
        for item in items:
            files = item["files"]
            video_url = self._url(root, files["video"]["path"])
            node = ET.SubElement(channel, "item")
            _text(node, "title", item["title"])
            _text(node, "link", video_url)
            _text(node, "description", item["description"])
            _text(node, "guid", item["id"]).set("isPermaLink", "false")
            _text(node, "pubDate", format_datetime(_parse(item["date_published"]), usegmt=True))
            ET.SubElement(
                node,
                "enclosure",
                {"url": video_url, "length": str(files["video"]["size"]), "type": "video/mp4"},
            )
            for tag in item["tags"]:
                _text(node, "category", tag)
            if "thumbnail" in files:
                ET.SubElement(
                    node,
                    f"{{{MEDIA_NS}}}thumbnail",
                    {"url": self._url(root, files["thumbnail"]["path"])},
                )
        ET.indent(rss)
        return ET.tostring(rss, encoding="utf-8", xml_declaration=True) + b"\n"

    def _url(self, root: Path, relative: str) -> str:
        if self.base_url:
            return f"{self.base_url.rstrip('/')}/{quote(relative)}"
        target = root / relative if relative else root
        return target.as_uri() + ("/" if not relative else "")


def video_id_for(idempotency_key: str) -> str:
    """A short id that is the same for every attempt to publish the same render."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:12]


# ---- helpers ----------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """An exclusive lock on the channel: flock on its own open file, so it excludes other
    processes and other threads alike, and is released if the process dies."""
    with open(root / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _sources(request: PublishRequest) -> dict[str, tuple[Path, str, str]]:
    """role → (source file, suffix, MIME type); every given file must exist."""
    video = Path(request.video_path)
    if not video.is_file() or video.stat().st_size == 0:
        state = "is empty" if video.is_file() else "does not exist"
        raise PublishError(
            f"cannot publish {request.project_key}: the video {video} {state}; "
            "re-materialise `video` and `upload` for this project"
        )
    found = {"video": (video, ".mp4", "video/mp4")}
    optional = {"thumbnail": request.thumbnail_path, "subtitles": request.subtitles_path}
    for role, value in optional.items():
        if not value:
            continue
        path = Path(value)
        if not path.is_file():
            raise PublishError(
                f"cannot publish {request.project_key}: the {role} {path} does not exist; "
                "re-materialise `video` for this project"
            )
        if role == "subtitles":
            found[role] = (path, ".srt", SRT_MIME)
        else:
            suffix = path.suffix.lower() if path.suffix.lower() in _IMAGE_TYPES else ".jpg"
            found[role] = (path, suffix, _IMAGE_TYPES[suffix])
    return found


def _read_items(root: Path) -> list[dict[str, Any]]:
    path = root / ITEMS_FILE
    if not path.exists():
        return []
    try:
        items = json.loads(path.read_text(encoding="utf-8"))["items"]
    except (ValueError, KeyError, TypeError) as err:
        raise PublishError(
            f"the local channel's record {path} is unreadable ({err}); restore it from a "
            "backup or move it away to start a new channel"
        ) from err
    return list(items)


def _find(items: list[dict[str, Any]], idempotency_key: str) -> dict[str, Any] | None:
    return next((i for i in items if i["id"] == idempotency_key), None)


def _published_video(item: dict[str, Any]) -> PublishedVideo:
    urls = item["urls"]
    details = {
        "project_key": item["project_key"],
        "path": item["files"]["video"]["path"],
        "feed_json": item["feeds"]["json"],
        "feed_rss": item["feeds"]["rss"],
        "privacy": item["privacy"],
    }
    details.update({f"{role}_url": url for role, url in urls.items() if role != "video"})
    return PublishedVideo(
        platform=PLATFORM,
        video_id=item["video_id"],
        url=urls["video"],
        published_at=_parse(item["date_published"]),
        idempotency_key=item["id"],
        details=details,
    )


def _copy_atomic(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with _temp_beside(target) as handle, open(source, "rb") as src:
        shutil.copyfileobj(src, handle, 1 << 20)


def _write_atomic(target: Path, data: bytes) -> None:
    with _temp_beside(target) as handle:
        handle.write(data)


@contextlib.contextmanager
def _temp_beside(target: Path) -> Iterator[BinaryIO]:
    """A temporary file next to `target`, renamed onto it when the block succeeds and removed
    when it fails; flushed to disk first so a crash leaves the old file or the new one."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _text(parent: ET.Element, tag: str, value: str) -> ET.Element:
    node = ET.SubElement(parent, tag)
    node.text = _NOT_XML.sub("", value)
    return node


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode("utf-8", "replace")


def _utc(moment: datetime) -> datetime:
    # A naive time is taken as UTC, which is what PublishRequest documents.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _parse(text: str) -> datetime:
    return _utc(datetime.fromisoformat(text))


def _feed_date(text: str) -> str:
    return _parse(text).replace(microsecond=0).isoformat().replace("+00:00", "Z")
