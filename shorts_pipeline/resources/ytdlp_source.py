"""Clips from the web through yt-dlp: keyword search, video URLs, playlists and channels.

`YtDlpSource` follows the same interface as the local library: `search` answers with
metadata only (nothing is downloaded), `fetch` downloads one chosen clip. Downloads land in
a cache shared by every project, `cache_dir()/downloads/<extractor>/<id>.<ext>`, so a clip is
fetched once; beside each file a `<file>.info.json` sidecar keeps where it came from (the
original URL, uploader, licence). Files appear under their final name only when complete.

Safety: `file://` URLs and hosts that resolve to loopback, private or link-local addresses
are refused unless `allow_file_urls` / `allow_private_addresses` are on, and proxy
credentials never appear in messages. Downloads stop at `max_filesize_mb` whether or not the
server states a size (bytes are counted as they arrive), and nothing is kept of one stopped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import uuid
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
from pydantic import Field

from shorts_pipeline.home import cache_dir
from shorts_pipeline.keys import safe_segment
from shorts_pipeline.models import ClipCandidate
from shorts_pipeline.render.errors import ProbeError
from shorts_pipeline.render.probe import probe_json
from shorts_pipeline.resources.clip_sources import ClipSourceError, NoMatchesError, SearchOutcome

# ≤ 1080p H.264 + AAC when the site has it (merged into mp4), else the best ≤ 1080p, else best.
DEFAULT_FORMAT = (
    "bv*[height<=1080][vcodec^=avc1]+ba[acodec^=mp4a]"
    "/b[height<=1080][vcodec^=avc1]/b[height<=1080]/b"
)
SIDECAR_SUFFIX = ".info.json"
SIDECAR_VERSION = 1
LIBRARY_HINT = "or use the offline clip library instead (--search-source library)"
_LIVE_STATES = {"is_live": "a live stream", "is_upcoming": "an upcoming live stream"}
_LIVE_STATES["post_live"] = "a live stream that has not finished processing"
_NOT_MEDIA_SUFFIXES = (SIDECAR_SUFFIX, ".part", ".ytdl", ".tmp", ".partial")


class NetworkUnavailableError(ClipSourceError):
    """The source cannot reach the network (DNS failure, no route, proxy down)."""


@dataclass(frozen=True)
class ClipProvenance:
    """Where a clip came from and under which terms: what the sidecar and search keep."""

    clip_id: str
    extractor: str
    video_id: str
    url: str  # the URL the clip was found under (search result, playlist entry, user URL)
    webpage_url: str | None
    title: str
    uploader: str | None
    uploader_url: str | None
    channel: str | None
    license: str | None


@dataclass
class YtDlpSearchOutcome(SearchOutcome):
    """A `SearchOutcome` plus each candidate's provenance, keyed by candidate id."""

    provenance: dict[str, ClipProvenance] = field(default_factory=dict)


class YtDlpSource(dg.ConfigurableResource):
    """Clips found and downloaded with yt-dlp (YouTube, TikTok and ~1800 other sites).

    `search` runs a yt-dlp search (`ytsearchN:` or any other search prefix) and
    `search_urls` reads video, playlist and channel URLs; both return metadata only (title,
    uploader, views, likes, duration, publish date, thumbnail, licence), skipping live
    streams, videos over `max_duration_seconds` and unavailable videos with the reason.
    `fetch` downloads one chosen clip (≤ 1080p H.264/AAC when offered) into a download cache
    shared across projects. Without a network every call fails at once with a message that
    suggests the offline library.
    """

    search_prefix: str = Field(
        default="ytsearch",
        description="yt-dlp search prefix used by `search`, e.g. ytsearch, ytsearchdate.",
    )
    max_duration_seconds: float = Field(
        default=600.0, gt=0, description="Longer videos are refused before any download."
    )
    max_filesize_mb: int = Field(default=500, gt=0, description="Largest download accepted.")
    socket_timeout: float = Field(default=20.0, gt=0, description="Seconds without data.")
    retries: int = Field(default=3, ge=0, description="Retries of a failed request.")
    retry_backoff_seconds: float = Field(
        default=1.0, ge=0, description="First wait between retries; doubles each retry."
    )
    rate_limit: str | None = Field(default=None, description="Download rate cap, e.g. 2M.")
    proxy: str | None = Field(default=None, description="Proxy URL, e.g. socks5://host:1080.")
    cookies_file: str | None = Field(
        default=None, description="Netscape cookies file for videos that need a sign-in."
    )
    allowed_extractors: list[str] = Field(
        default_factory=list,
        description="yt-dlp extractor names allowed (e.g. youtube, tiktok); empty allows all.",
    )
    format_selector: str = Field(default=DEFAULT_FORMAT, description="yt-dlp format selector.")
    allow_private_addresses: bool = Field(
        default=False, description="Allow URLs on loopback, private or link-local addresses."
    )
    allow_file_urls: bool = Field(default=False, description="Allow file:// URLs.")

    @property
    def name(self) -> str:
        return "ytdlp"

    # --- search ---------------------------------------------------------------------------

    def search(self, terms: list[str], limit: int = 20) -> YtDlpSearchOutcome:
        """Keyword search through `search_prefix` (e.g. `ytsearch20:football skills`)."""
        query = " ".join(t.strip() for t in terms if t.strip())
        if not query:
            raise ClipSourceError("the ytdlp source needs search keywords")
        target = f"{self.search_prefix}{limit}:{query}"
        self._check_extractor(target)
        outcome = YtDlpSearchOutcome(candidates=[])
        self._collect(target, limit, outcome)
        return self._finish(outcome, f"the search {target!r}")

    def search_urls(self, urls: list[str], limit: int = 50) -> YtDlpSearchOutcome:
        """Metadata for video URLs, and for the videos of playlist and channel URLs."""
        outcome = YtDlpSearchOutcome(candidates=[])
        for url in urls:
            if len(outcome.candidates) >= limit:
                break
            try:
                self._check_url(url)
                self._check_extractor(url)
            except NetworkUnavailableError:
                raise
            except ClipSourceError as err:
                outcome.skipped.append((url, str(err)))
                continue
            self._collect(url, limit, outcome)
        return self._finish(outcome, f"the URLs {', '.join(urls)}")

    # --- fetch ----------------------------------------------------------------------------

    def fetch(self, candidate: ClipCandidate, dest_dir: Path) -> Path:
        """Download `candidate` (or take it from the download cache) into `dest_dir`."""
        extractor = candidate.source.removeprefix("ytdlp:")
        if not candidate.source.startswith("ytdlp:") or not extractor:
            raise ClipSourceError(
                f"clip {candidate.id} comes from {candidate.source!r}, not from the ytdlp source"
            )
        self._check_extractor_name(extractor, candidate.url)
        cached = _cached_file(*_cache_slot(extractor, candidate.id))
        if cached is None:
            cached = self._download(candidate)
        return _deliver(cached, candidate.id, dest_dir)

    def provenance(self, media_file: Path) -> dict[str, Any] | None:
        """The sidecar of a fetched clip (see `_write_sidecar`), or None if it has none."""
        sidecar = media_file.with_name(media_file.name + SIDECAR_SUFFIX)
        try:
            data: dict[str, Any] = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        return data

    def _download(self, candidate: ClipCandidate) -> Path:
        url = candidate.url
        self._check_url(url)
        log = _Collector()
        cap = self.max_filesize_mb * 1024 * 1024
        options = self._options(log) | {
            "format": self.format_selector,
            "merge_output_format": "mp4",
            # yt-dlp checks max_filesize against Content-Length only: a server that sends
            # none (or fragments) would fill the disk, so the hook counts what arrives.
            "max_filesize": cap,
            "progress_hooks": [_size_guard(cap)],
            "noplaylist": True,
            "overwrites": True,
        }
        incoming = cache_dir() / "downloads" / ".incoming" / uuid.uuid4().hex
        options["outtmpl"] = {"default": str(incoming / "media.%(ext)s")}
        try:
            with _youtube_dl(options) as ydl:
                info = self._extract(ydl, url, log)
                self._refuse_unusable(info, url)
                extractor, video_id = _extractor_of(info), str(info.get("id") or "")
                # The search may have named the clip differently: look again under its real id.
                slot = _cache_slot(extractor, _clip_id(extractor, video_id))
                cached = _cached_file(*slot)
                if cached is not None:
                    return cached
                for media_url in _media_urls(info):
                    self._check_url(media_url)
                self._refuse_too_big(info, url)
                try:
                    result = ydl.process_ie_result(info, download=True)
                except _DownloadTooBig as err:
                    raise self._too_big_error(url, err.size) from None
                except _download_error() as err:
                    cause = _root_cause(err)
                    if isinstance(cause, _DownloadTooBig):
                        raise self._too_big_error(url, cause.size) from None
                    raise self._explain(err, url, log) from err
            downloads = (result or {}).get("requested_downloads") or [{}]
            path = Path(downloads[0].get("filepath") or incoming / "missing")
            if not path.is_file():
                raise ClipSourceError(self._no_file_reason(url, log))
            if path.stat().st_size > cap:  # e.g. video and audio each under it, merged over
                raise self._too_big_error(url, path.stat().st_size)
            self._check_downloaded_duration(path, info, url)
            return _store(path, slot, info, url)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)

    # --- shared steps ---------------------------------------------------------------------

    def _collect(self, target: str, limit: int, outcome: YtDlpSearchOutcome) -> None:
        """Add the videos behind one URL or search to `outcome` (up to `limit` in all)."""
        log = _Collector()
        options = self._options(log) | {
            "extract_flat": "in_playlist",
            # Room for skipped entries, without listing a whole channel.
            "playlistend": max(limit * 2, limit + 10),
        }
        with _youtube_dl(options) as ydl:
            try:
                info = self._extract(ydl, target, log)
            except NetworkUnavailableError:
                raise
            except ClipSourceError as err:
                outcome.skipped.append((target, str(err)))
                return
            entries = info.get("entries")
            if entries is None:
                self._add(info, target, outcome)
                return
            for entry in entries:
                if len(outcome.candidates) >= limit:
                    return
                if entry:
                    self._add_entry(ydl, entry, log, outcome)

    def _add_entry(
        self, ydl: Any, entry: dict[str, Any], log: _Collector, outcome: YtDlpSearchOutcome
    ) -> None:
        """Resolve one flat playlist/search entry; cheap refusals happen before the request."""
        url = str(entry.get("url") or entry.get("webpage_url") or "")
        label = url or str(entry.get("id") or entry.get("title") or "?")
        try:
            self._refuse_unusable(entry, label)
            if entry.get("_type") not in ("url", "url_transparent"):
                self._add(entry, label, outcome)
                return
            self._check_url(url)
            self._check_extractor(url)
            info = self._extract(ydl, url, log)
        except NetworkUnavailableError:
            raise
        except ClipSourceError as err:
            outcome.skipped.append((label, str(err)))
            return
        self._add(info, url, outcome)

    def _add(self, info: dict[str, Any], url: str, outcome: YtDlpSearchOutcome) -> None:
        try:
            self._refuse_unusable(info, url)
        except ClipSourceError as err:
            outcome.skipped.append((url, str(err)))
            return
        candidate, provenance = _candidate(info, url)
        if any(c.id == candidate.id for c in outcome.candidates):
            return  # the same video listed twice (a URL and a playlist holding it)
        outcome.candidates.append(candidate)
        outcome.provenance[candidate.id] = provenance

    def _finish(self, outcome: YtDlpSearchOutcome, what: str) -> YtDlpSearchOutcome:
        if not outcome.candidates:
            detail = "; ".join(f"{item}: {reason}" for item, reason in outcome.skipped[:5])
            raise NoMatchesError(
                f"the ytdlp source found no usable video for {what}"
                + (f" ({detail})" if detail else "")
            )
        return outcome

    def _extract(self, ydl: Any, url: str, log: _Collector) -> dict[str, Any]:
        try:
            info = ydl.extract_info(url, download=False)
        except _download_error() as err:
            raise self._explain(err, url, log) from err
        if not isinstance(info, dict):
            raise ClipSourceError(f"yt-dlp returned nothing for {self._redact(url)}")
        return info

    def _refuse_unusable(self, info: dict[str, Any], url: str) -> None:
        """Refuse live streams, long videos and other extractors from metadata alone."""
        where = self._redact(url)
        state = info.get("live_status") or ("is_live" if info.get("is_live") else None)
        if state in _LIVE_STATES:
            raise ClipSourceError(f"{where} is {_LIVE_STATES[state]}; only finished videos work")
        duration = info.get("duration")
        if isinstance(duration, int | float) and duration > self.max_duration_seconds:
            raise ClipSourceError(
                f"{where} lasts {_clock(duration)}, over max_duration_seconds "
                f"({self.max_duration_seconds:g} s); refused before download"
            )
        extractor = info.get("extractor_key") or info.get("ie_key")
        if extractor and info.get("_type") in (None, "video"):
            self._check_extractor_name(str(info.get("extractor") or extractor), url)

    def _refuse_too_big(self, info: dict[str, Any], url: str) -> None:
        formats = info.get("requested_formats") or [info]
        sizes = [f.get("filesize") or f.get("filesize_approx") for f in formats]
        known = [s for s in sizes if isinstance(s, int | float)]
        if known and sum(known) > self.max_filesize_mb * 1024 * 1024:
            raise ClipSourceError(
                f"{self._redact(url)} is about {sum(known) / 2**20:.0f} MB, over max_filesize_mb "
                f"({self.max_filesize_mb} MB); refused before download"
            )

    def _too_big_error(self, url: str, size: int) -> ClipSourceError:
        return ClipSourceError(
            f"{self._redact(url)} is larger than max_filesize_mb ({self.max_filesize_mb} MB): "
            f"stopped after {size / 2**20:.1f} MB, nothing was kept"
        )

    def _check_downloaded_duration(self, path: Path, info: dict[str, Any], url: str) -> None:
        """Sites that do not state a duration (direct links) are measured after download."""
        if info.get("duration") is not None:
            return
        try:
            duration = float(probe_json(path).get("format", {}).get("duration") or 0)
        except (ProbeError, ValueError):
            return  # the selection step probes every clip and says what is wrong
        if duration > self.max_duration_seconds:
            raise ClipSourceError(
                f"{self._redact(url)} lasts {_clock(duration)}, over max_duration_seconds "
                f"({self.max_duration_seconds:g} s); the download was discarded"
            )

    def _check_url(self, url: str) -> None:
        """Refuse file:// and private-network URLs unless the settings allow them."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "file":
            if not self.allow_file_urls:
                raise ClipSourceError(
                    f"the ytdlp source refuses the file URL {url}; set allow_file_urls=true "
                    "to read local files (or put them in the clip library)"
                )
            return
        if scheme not in ("http", "https"):
            raise ClipSourceError(
                f"yt-dlp does not support the URL {self._redact(url)!r} (unsupported URL: "
                "give an http(s) address of a video, playlist or channel)"
            )
        host = parts.hostname or ""
        for address in self._addresses(host, parts.port or (443 if scheme == "https" else 80)):
            if not self.allow_private_addresses and _is_private(address):
                raise ClipSourceError(
                    f"the ytdlp source refuses {self._redact(url)}: {host} is a loopback, "
                    f"private or link-local address ({address}); set "
                    "allow_private_addresses=true to allow it"
                )

    def _addresses(self, host: str, port: int) -> list[str]:
        if not host:
            raise ClipSourceError("a URL without a host name cannot be fetched")
        try:
            return [str(ip_address(host))]
        except ValueError:
            pass
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            return ["127.0.0.1"]
        # getaddrinfo has no timeout of its own and can hang where DNS is unreachable.
        pool = ThreadPoolExecutor(max_workers=1)
        future = pool.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
        try:
            infos = future.result(timeout=self.socket_timeout)
        except (OSError, FutureTimeout) as err:
            if self.proxy:
                return []  # the proxy resolves names itself; it may know hosts we do not
            reason = "timed out" if isinstance(err, FutureTimeout) else str(err)
            raise NetworkUnavailableError(
                f"the ytdlp source cannot resolve {host} ({reason}); check the address and "
                f"your network connection, {LIBRARY_HINT}"
            ) from err
        finally:
            pool.shutdown(wait=False)
        return sorted({str(info[4][0]) for info in infos})

    def _check_extractor(self, url: str) -> None:
        """Refuse a URL whose yt-dlp extractor is not allowed, before any request."""
        if self.allowed_extractors:
            self._check_extractor_name(_extractor_for_url(url), url)

    def _check_extractor_name(self, extractor: str, url: str) -> None:
        if not self.allowed_extractors or _extractor_allowed(extractor, self.allowed_extractors):
            return
        raise ClipSourceError(
            f"the ytdlp source refuses {self._redact(url)}: its yt-dlp extractor "
            f"{extractor!r} is not in allowed_extractors ({', '.join(self.allowed_extractors)}); "
            "add it there to allow it"
        )

    def _options(self, log: _Collector) -> dict[str, Any]:
        def backoff(n: int) -> float:
            return min(self.retry_backoff_seconds * 2**n, 60.0)

        options: dict[str, Any] = {
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "logger": log,
            "color": "no_color",
            "socket_timeout": self.socket_timeout,
            "retries": self.retries,
            "fragment_retries": self.retries,
            # Only downloads back off: a failed page request with no network must fail at once.
            "retry_sleep_functions": {"http": backoff, "fragment": backoff},
            "enable_file_urls": self.allow_file_urls,
            "cachedir": str(cache_dir() / "yt-dlp"),
        }
        if self.proxy:
            options["proxy"] = self.proxy
        if self.cookies_file:
            if not Path(self.cookies_file).expanduser().is_file():
                raise ClipSourceError(
                    f"the cookies file {self.cookies_file} set in cookies_file does not exist"
                )
            options["cookiefile"] = str(Path(self.cookies_file).expanduser())
        if self.rate_limit:
            options["ratelimit"] = _rate(self.rate_limit)
        return options

    def _explain(self, err: Exception, url: str, log: _Collector) -> ClipSourceError:
        """A specific, secret-free message for a yt-dlp failure on `url`."""
        where = self._redact(url)
        message = _plain(str(err))
        cause = _root_cause(err)
        status = getattr(getattr(cause, "response", None), "status", None) or getattr(
            cause, "status", None
        )
        text = " ".join([message, str(cause or ""), *log.errors]).lower()
        tried = f"after {self.retries} retr{'y' if self.retries == 1 else 'ies'}"
        reason: str
        if _is_network_failure(cause, text):
            return NetworkUnavailableError(
                self._redact(
                    f"the ytdlp source cannot reach the network for {where} ({message}); check "
                    f"your connection{' and the proxy setting' if self.proxy else ''}, "
                    f"{LIBRARY_HINT}"
                )
            )
        if status in (404, 410):
            reason = f"HTTP {status}: the video was removed or the URL is wrong"
        elif status in (401, 403):
            reason = (
                f"HTTP {status}: the video is private, age-restricted or blocked here; "
                "if you can watch it, export your browser cookies and set cookies_file"
            )
        elif status == 429:
            reason = "HTTP 429: the site is rate limiting us; try later or set rate_limit"
        elif isinstance(status, int) and status >= 400:
            reason = f"HTTP {status} from the server ({message})"
        elif "timed out" in text or isinstance(cause, TimeoutError):
            reason = f"timed out: no data for socket_timeout={self.socket_timeout:g} s ({tried})"
        elif "more expected" in text or "incompleteread" in text or "content too short" in text:
            reason = f"the download was cut off before the end ({tried}); nothing was kept"
        elif "unsupported url" in text or "not a valid url" in text:
            reason = "unsupported URL: yt-dlp finds no video there"
        elif any(w in text for w in ("private video", "video unavailable", "been removed")):
            reason = f"the video is private or removed ({message})"
        else:
            reason = message
        return ClipSourceError(self._redact(f"yt-dlp could not get {where}: {reason}"))

    def _no_file_reason(self, url: str, log: _Collector) -> str:
        text = " ".join([*log.errors, *log.warnings, *log.notes])
        if "max-filesize" in text:
            return (
                f"{self._redact(url)} is larger than max_filesize_mb ({self.max_filesize_mb} MB); "
                "not downloaded"
            )
        detail = _plain(log.errors[-1]) if log.errors else "no file was written"
        return self._redact(f"yt-dlp could not download {url}: {detail}")

    def _redact(self, text: str) -> str:
        return _redact(text, self.proxy)


# --- helpers ---------------------------------------------------------------------------------


class _Collector:
    """A yt-dlp logger that keeps warnings and errors for our messages instead of printing."""

    def __init__(self) -> None:
        self.notes: deque[str] = deque(maxlen=20)  # yt-dlp's screen lines, e.g. size aborts
        self.warnings: list[str] = []
        self.errors: list[str] = []

    def debug(self, msg: str) -> None:
        if not msg.startswith("[debug]"):
            self.notes.append(msg.strip())

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)

    def error(self, msg: str) -> None:
        self.errors.append(msg)


def _youtube_dl(options: dict[str, Any]) -> Any:
    import yt_dlp  # imported on use: it takes ~0.5 s and Dagster imports this module at load

    return yt_dlp.YoutubeDL(options)


class _DownloadTooBig(Exception):
    """Raised from yt-dlp's progress hook: the download passed max_filesize_mb."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


def _size_guard(cap: int) -> Any:
    """A yt-dlp progress hook that stops a download once more than `cap` bytes arrived."""

    def hook(status: dict[str, Any]) -> None:
        done = status.get("downloaded_bytes") or 0
        if isinstance(done, int | float) and done > cap:
            raise _DownloadTooBig(int(done))

    return hook


def _download_error() -> type[Exception]:
    from yt_dlp.utils import DownloadError

    return DownloadError


def _extractor_for_url(url: str) -> str:
    """The yt-dlp extractor that would handle `url` (no network: URL patterns only)."""
    from yt_dlp.extractor import gen_extractor_classes

    for ie in gen_extractor_classes():
        if ie.suitable(url):
            return str(ie.IE_NAME)
    return "generic"


def _extractor_allowed(extractor: str, allowed: Iterable[str]) -> bool:
    """`youtube` allows `youtube`, `youtube:tab`, `youtube:search`; case does not matter."""
    name = extractor.lower()
    for item in allowed:
        wanted = item.strip().lower()
        if name == wanted or name.startswith(wanted + ":"):
            return True
        # Pages the generic extractor reads can hand their <video> to the html5 extractor.
        if wanted == "generic" and name in ("html5", "html5mediaembed"):
            return True
    return False


def _extractor_of(info: dict[str, Any]) -> str:
    return str(info.get("extractor") or info.get("extractor_key") or "generic").lower()


def _clip_id(extractor: str, video_id: str) -> str:
    folder, stem = _cache_names(extractor, video_id)
    return f"{folder}-{stem}"


def _cache_names(extractor: str, video_id: str) -> tuple[str, str]:
    return safe_segment(extractor.lower(), 32), safe_segment(video_id or "video", 80)


def _cache_slot(extractor: str, clip_id: str) -> tuple[Path, str]:
    """(folder, file stem) of a clip in the download cache; the stem is the video id."""
    folder = safe_segment(extractor.lower(), 32)
    stem = clip_id.removeprefix(f"{folder}-") if clip_id.startswith(f"{folder}-") else clip_id
    return cache_dir() / "downloads" / folder, safe_segment(stem, 80)


def _cached_file(folder: Path, stem: str) -> Path | None:
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob(f"{stem}.*")):
        if path.stem == stem and not path.name.endswith(_NOT_MEDIA_SUFFIXES) and path.is_file():
            return path
    return None


def _store(path: Path, slot: tuple[Path, str], info: dict[str, Any], url: str) -> Path:
    """Move a finished download into the cache (sidecar first, then the media by rename)."""
    folder, stem = slot
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{stem}{path.suffix.lower() or '.mp4'}"
    _write_sidecar(final, info, url)
    os.replace(path, final)
    return final


def _write_sidecar(media: Path, info: dict[str, Any], url: str) -> None:
    """`<media>.info.json`: where the clip came from and under which licence."""
    extractor = _extractor_of(info)
    video_id = str(info.get("id") or "")
    data = {
        "version": SIDECAR_VERSION,
        "clip_id": _clip_id(extractor, video_id),
        "source": f"ytdlp:{extractor}",
        "extractor": extractor,
        "extractor_key": info.get("extractor_key"),
        "video_id": video_id,
        "url": url,
        "webpage_url": info.get("webpage_url") or url,
        "title": info.get("title"),
        "uploader": info.get("uploader") or info.get("channel"),
        "uploader_url": info.get("uploader_url") or info.get("channel_url"),
        "license": info.get("license"),
        "duration": info.get("duration"),
        "published": _iso(_published(info)),
        "format_id": info.get("format_id"),
        "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tmp = media.with_name(f"{media.name}{SIDECAR_SUFFIX}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(media.with_name(media.name + SIDECAR_SUFFIX))


def _deliver(cached: Path, clip_id: str, dest_dir: Path) -> Path:
    """Hard-link (or copy) the cached clip and its sidecar into `dest_dir`."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{safe_segment(clip_id)}{cached.suffix}"
    pairs = [(cached, dest)]
    sidecar = cached.with_name(cached.name + SIDECAR_SUFFIX)
    if sidecar.is_file():
        pairs.insert(0, (sidecar, dest.with_name(dest.name + SIDECAR_SUFFIX)))
    for src, dst in pairs:
        if dst.exists():
            continue
        tmp = dst.with_name(f"{dst.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        tmp.replace(dst)
    return dest


def _candidate(info: dict[str, Any], url: str) -> tuple[ClipCandidate, ClipProvenance]:
    extractor = _extractor_of(info)
    video_id = str(info.get("id") or info.get("display_id") or url)
    clip_id = _clip_id(extractor, video_id)
    uploader = info.get("uploader") or info.get("channel") or info.get("creator")
    licence = info.get("license")
    tags = [str(t) for t in (info.get("tags") or [])[:15]]
    tags += [f"uploader:{uploader}"] if uploader else []
    tags += [f"license:{licence}"] if licence else []
    webpage_url = info.get("webpage_url") or info.get("original_url")
    candidate = ClipCandidate(
        id=clip_id,
        source=f"ytdlp:{extractor}",
        url=str(webpage_url or url),
        title=str(info.get("title") or video_id),
        duration=_float(info.get("duration")),
        width=_int(info.get("width")),
        height=_int(info.get("height")),
        views=_int(info.get("view_count")),
        likes=_int(info.get("like_count")),
        published=_published(info),
        thumbnail=_thumbnail(info),
        tags=tags,
    )
    provenance = ClipProvenance(
        clip_id=clip_id,
        extractor=extractor,
        video_id=video_id,
        url=url,
        webpage_url=webpage_url,
        title=candidate.title,
        uploader=uploader,
        uploader_url=info.get("uploader_url") or info.get("channel_url"),
        channel=info.get("channel"),
        license=licence,
    )
    return candidate, provenance


def _media_urls(info: dict[str, Any]) -> list[str]:
    """The URLs a download will request (the chosen formats), for the address check."""
    formats = info.get("requested_formats") or [info]
    return [str(f["url"]) for f in formats if f.get("url")]


def _published(info: dict[str, Any]) -> datetime | None:
    for key in ("timestamp", "release_timestamp"):
        value = info.get(key)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, tz=UTC)
    for key in ("upload_date", "release_date"):
        value = str(info.get(key) or "")
        if re.fullmatch(r"\d{8}", value):
            return datetime.strptime(value, "%Y%m%d").replace(tzinfo=UTC)
    return None


def _thumbnail(info: dict[str, Any]) -> str | None:
    if info.get("thumbnail"):
        return str(info["thumbnail"])
    thumbs = [t for t in info.get("thumbnails") or [] if t.get("url")]
    return str(thumbs[-1]["url"]) if thumbs else None  # yt-dlp sorts them worst to best


def _is_private(address: str) -> bool:
    ip = ip_address(address.split("%")[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


_NETWORK_SIGNS = (
    "failed to resolve",
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
    "getaddrinfo failed",
    "no address associated",
    "network is unreachable",
    "no route to host",
    "unable to connect to proxy",
)


def _is_network_failure(cause: BaseException | None, text: str) -> bool:
    if isinstance(cause, socket.gaierror):
        return True
    name = type(cause).__name__ if cause is not None else ""
    return name in ("ProxyError", "NameResolutionError") or any(s in text for s in _NETWORK_SIGNS)


def _root_cause(err: BaseException) -> BaseException | None:
    """The networking exception behind a yt-dlp DownloadError (HTTPError, TransportError…)."""
    exc_info = getattr(err, "exc_info", None)
    cause: BaseException | None = exc_info[1] if exc_info else None
    # An ExtractorError carries the request's own exception in `.cause`.
    while type(cause).__name__ == "ExtractorError" and isinstance(
        getattr(cause, "cause", None), BaseException
    ):
        cause = cause.cause  # type: ignore[union-attr]
    return cause


def _plain(message: str) -> str:
    """yt-dlp's message without its `ERROR: ` prefix and the `(caused by …)` repetition."""
    text = re.sub(r"^(ERROR|WARNING):\s*", "", message.strip())
    return re.sub(r"\s*\(caused by .*$", "", text, flags=re.DOTALL)


def _redact(text: str, proxy: str | None = None) -> str:
    """Hide user:password in any URL, and the proxy's credentials wherever they appear."""
    text = re.sub(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@'\"]+:[^/\s@'\"]*@", r"\1***:***@", text)
    if proxy:
        parts = urlsplit(proxy)
        for secret in (parts.password, parts.username):
            if secret and len(secret) >= 3:
                text = text.replace(secret, "***")
    return text


def _rate(text: str) -> int:
    from yt_dlp.utils import parse_bytes

    try:
        value = parse_bytes(text.strip())
    except (AttributeError, ValueError):
        value = None
    if not value:
        raise ClipSourceError(f"rate_limit {text!r} is not a rate such as 500K or 2M (bytes/s)")
    return int(value)


def _clock(seconds: float) -> str:
    s = round(seconds)
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
