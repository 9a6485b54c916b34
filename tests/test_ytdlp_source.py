"""The yt-dlp clip source against a local HTTP server: real MP4s, real pages, real failures.

Every URL is on 127.0.0.1, so the tests turn `allow_private_addresses` on explicitly; none
touches the internet (the offline-search test makes name resolution fail on purpose).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shorts_pipeline.home import cache_dir
from shorts_pipeline.models import ClipCandidate
from shorts_pipeline.render.probe import probe_clip
from shorts_pipeline.render.synth import ClipRecipe, make_clip, make_random_bytes
from shorts_pipeline.resources.clip_sources import ClipSourceError, NoMatchesError
from shorts_pipeline.resources.ytdlp_source import YtDlpSource
from tests.media_server import MediaServer


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("served")
    make_clip(root / "clip.mp4", ClipRecipe(width=320, height=240, seconds=2.0, seed=7))
    make_clip(root / "four.mp4", ClipRecipe(width=320, height=240, seconds=4.0, seed=8))
    return root


@pytest.fixture
def server(media_dir: Path) -> Iterator[MediaServer]:
    with MediaServer(media_dir) as srv:
        yield srv


def local_source(**settings: Any) -> YtDlpSource:
    """A source allowed to reach the test server, failing fast."""
    base: dict[str, Any] = {
        "allow_private_addresses": True,
        "socket_timeout": 1.0,
        "retries": 1,
        "retry_backoff_seconds": 0.0,
    }
    return YtDlpSource(**(base | settings))


def video_page(title: str, src: str) -> str:
    return (
        f"<html><head><title>{title}</title></head><body><video src='{src}'></video></body></html>"
    )


def og_page(title: str, video_url: str) -> str:
    return (
        "<html><head>"
        f'<meta property="og:title" content="{title}">'
        f'<meta property="og:video" content="{video_url}">'
        '<meta property="og:video:type" content="video/mp4">'
        "</head><body></body></html>"
    )


def json_ld_page(video_url: str, duration: str, **extra: Any) -> str:
    data = {
        "@context": "https://schema.org",
        "@type": "VideoObject",
        "name": "Rabona from thirty yards",
        "duration": duration,
        "contentUrl": video_url,
        "encodingFormat": "video/mp4",
        "uploadDate": "2026-05-01T10:00:00Z",
        "author": {"@type": "Person", "name": "Ann Striker"},
        "thumbnailUrl": video_url.rsplit("/", 1)[0] + "/thumb.jpg",
        "interactionStatistic": {
            "@type": "InteractionCounter",
            "interactionType": "https://schema.org/WatchAction",
            "userInteractionCount": 12345,
        },
        **extra,
    }
    return (
        "<html><head><title>page</title>"
        f'<script type="application/ld+json">{json.dumps(data)}</script>'
        "</head><body></body></html>"
    )


def only(outcome_candidates: list[ClipCandidate]) -> ClipCandidate:
    assert len(outcome_candidates) == 1, outcome_candidates
    return outcome_candidates[0]


# --- metadata and download ---------------------------------------------------------------


def test_direct_mp4_url_gives_metadata_and_downloads_a_playable_clip(
    server: MediaServer, tmp_path: Path
) -> None:
    source = local_source()
    url = server.url("clip.mp4")
    candidate = only(source.search_urls([url]).candidates)
    assert candidate.source == "ytdlp:generic"
    assert candidate.id == "generic-clip"
    assert candidate.url == url

    path = source.fetch(candidate, tmp_path / "project")

    info = probe_clip(path)
    assert (info.width, info.height) == (320, 240)
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert path.parent == tmp_path / "project"
    cached = cache_dir() / "downloads" / "generic" / "clip.mp4"
    assert cached.is_file()
    sidecar = json.loads((cached.parent / "clip.mp4.info.json").read_text())
    assert sidecar["webpage_url"] == url
    assert sidecar["extractor"] == "generic"
    assert sidecar["clip_id"] == candidate.id
    assert source.provenance(path) == sidecar


def test_html_video_page_is_read_by_the_generic_extractors(
    server: MediaServer, tmp_path: Path
) -> None:
    page = server.add_page("watch.html", video_page("Street nutmeg", "/clip.mp4"))
    source = local_source()

    candidate = only(source.search_urls([page]).candidates)

    assert candidate.title.startswith("Street nutmeg")
    assert candidate.url == page
    assert candidate.source.startswith("ytdlp:")
    assert probe_clip(source.fetch(candidate, tmp_path)).duration == pytest.approx(2.0, abs=0.1)


def test_og_video_page_gives_its_title(server: MediaServer) -> None:
    page = server.add_page("og.html", og_page("Freestyle juggling", server.url("clip.mp4")))

    candidate = only(local_source().search_urls([page]).candidates)

    assert candidate.title == "Freestyle juggling"
    assert candidate.url == page


def test_structured_page_gives_uploader_views_date_and_thumbnail(server: MediaServer) -> None:
    page = server.add_page(
        "ld.html", json_ld_page(server.url("clip.mp4"), "PT2S", license="CC-BY-4.0")
    )

    outcome = local_source().search_urls([page])

    candidate = only(outcome.candidates)
    assert candidate.title == "Rabona from thirty yards"
    assert candidate.views == 12345
    assert candidate.duration == 2
    assert candidate.published is not None and candidate.published.isoformat() == (
        "2026-05-01T10:00:00+00:00"
    )
    assert candidate.thumbnail == server.url("thumb.jpg")
    assert "uploader:Ann Striker" in candidate.tags
    assert outcome.provenance[candidate.id].uploader == "Ann Striker"
    assert outcome.provenance[candidate.id].webpage_url == page


def test_second_fetch_comes_from_the_cache_without_any_request(
    server: MediaServer, tmp_path: Path
) -> None:
    page = server.add_page("cached.html", video_page("Cached", "/clip.mp4"))
    source = local_source(rate_limit="20M")
    candidate = only(source.search_urls([page]).candidates)
    first = source.fetch(candidate, tmp_path / "project-a")
    before = sum(server.requests.values())

    second = source.fetch(candidate, tmp_path / "project-b")

    assert sum(server.requests.values()) == before
    assert second.read_bytes() == first.read_bytes()
    assert (second.parent / (second.name + ".info.json")).is_file()


def test_a_page_without_video_is_skipped_as_unsupported(server: MediaServer) -> None:
    page = server.add_page("about.html", "<html><head><title>About</title></head></html>")
    good = server.url("clip.mp4")

    outcome = local_source().search_urls([page, good])

    assert [c.url for c in outcome.candidates] == [good]
    assert outcome.skipped[0][0] == page
    assert "unsupported URL" in outcome.skipped[0][1]


def test_a_page_with_several_videos_gives_one_candidate_each(server: MediaServer) -> None:
    page = server.add_page(
        "two.html",
        "<html><head><title>Two goals</title></head><body>"
        "<video src='/clip.mp4'></video><video src='/four.mp4'></video></body></html>",
    )

    outcome = local_source().search_urls([page])

    assert len(outcome.candidates) == 2
    assert len({c.id for c in outcome.candidates}) == 2
    assert len(local_source().search_urls([page], limit=1).candidates) == 1


def test_live_streams_are_skipped(server: MediaServer) -> None:
    # An HLS playlist without #EXT-X-ENDLIST is a live stream still being written.
    live = server.add_page(
        "live.m3u8",
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n"
        "#EXTINF:2.0,\nseg7.ts\n",
        content_type="application/vnd.apple.mpegurl",
    )

    with pytest.raises(NoMatchesError, match="is a live stream; only finished videos work"):
        local_source().search_urls([live])


# --- failures ----------------------------------------------------------------------------


def test_cut_off_download_is_retried_and_leaves_no_partial_file(
    server: MediaServer, media_dir: Path, tmp_path: Path
) -> None:
    server.add_cut("cut.mp4", media_dir / "clip.mp4")
    page = server.add_page("cut.html", video_page("Cut", "/cut.mp4"))
    source = local_source(retries=2)
    candidate = only(source.search_urls([page]).candidates)

    with pytest.raises(ClipSourceError, match=r"cut off.*after 2 retries"):
        source.fetch(candidate, tmp_path / "project")

    assert server.count("cut.mp4") == 3  # the first try and two retries
    downloads = cache_dir() / "downloads"
    assert [p for p in downloads.rglob("*") if p.is_file()] == []
    assert not (tmp_path / "project").exists()


@pytest.mark.parametrize(
    ("status", "expected"),
    [(404, r"HTTP 404: the video was removed"), (403, r"HTTP 403: the video is private")],
)
def test_missing_and_private_pages_are_named_in_the_message(
    server: MediaServer, tmp_path: Path, status: int, expected: str
) -> None:
    url = server.add_status(f"video-{status}.html", status)
    source = local_source()

    with pytest.raises(NoMatchesError, match=expected) as found:
        source.search_urls([url])
    assert url in str(found.value)

    gone = ClipCandidate(id=f"generic-video-{status}", source="ytdlp:generic", url=url, title="x")
    with pytest.raises(ClipSourceError, match=expected) as fetched:
        source.fetch(gone, tmp_path)
    assert url in str(fetched.value)


def test_slow_server_times_out_with_a_message_naming_the_timeout(server: MediaServer) -> None:
    url = server.add_slow("slow.html", delay=10)
    started = time.monotonic()

    with pytest.raises(NoMatchesError, match=r"timed out.*socket_timeout=1 s") as found:
        local_source().search_urls([url])

    assert url in str(found.value)
    assert time.monotonic() - started < 6


def test_slow_media_download_times_out(server: MediaServer, tmp_path: Path) -> None:
    server.add_slow("stall.mp4", delay=10)
    page = server.add_page("stall.html", video_page("Stall", "/stall.mp4"))
    source = local_source()
    candidate = only(source.search_urls([page]).candidates)

    with pytest.raises(ClipSourceError, match=r"timed out.*socket_timeout=1 s"):
        source.fetch(candidate, tmp_path)
    assert not list((cache_dir() / "downloads").rglob("*.mp4*"))


def test_files_over_the_size_cap_are_refused(server: MediaServer, tmp_path: Path) -> None:
    make_random_bytes(server.root / "big.mp4", n=1_600_000)
    source = local_source(max_filesize_mb=1)
    big = only(source.search_urls([server.url("big.mp4")]).candidates)
    stated = server.add_page(
        "big.html", json_ld_page(server.url("clip.mp4"), "PT2S", contentSize="5000000")
    )
    announced = only(source.search_urls([stated]).candidates)

    with pytest.raises(ClipSourceError, match=r"larger than max_filesize_mb \(1 MB\)"):
        source.fetch(big, tmp_path)
    with pytest.raises(ClipSourceError, match=r"about 5 MB, over max_filesize_mb.*before download"):
        source.fetch(announced, tmp_path)

    assert server.count("clip.mp4") == 0
    assert not [p for p in (cache_dir() / "downloads").rglob("*") if p.is_file()]


def test_bad_settings_are_named(server: MediaServer, tmp_path: Path) -> None:
    url = server.url("clip.mp4")
    with pytest.raises(ClipSourceError, match="cookies_file does not exist"):
        local_source(cookies_file=str(tmp_path / "nope.txt")).search_urls([url])
    with pytest.raises(ClipSourceError, match="rate_limit 'fast' is not a rate"):
        local_source(rate_limit="fast").search_urls([url])


# --- safety settings ---------------------------------------------------------------------


def test_loopback_urls_are_refused_unless_allowed(server: MediaServer, tmp_path: Path) -> None:
    url = server.url("clip.mp4")
    strict = YtDlpSource()

    with pytest.raises(ClipSourceError, match="allow_private_addresses=true"):
        strict.search_urls([url])
    candidate = ClipCandidate(id="generic-clip", source="ytdlp:generic", url=url, title="x")
    with pytest.raises(ClipSourceError, match="allow_private_addresses=true"):
        strict.fetch(candidate, tmp_path)
    assert sum(server.requests.values()) == 0

    assert local_source().search_urls([url]).candidates


def test_file_urls_are_refused_unless_allowed(media_dir: Path, tmp_path: Path) -> None:
    url = (media_dir / "clip.mp4").as_uri()

    with pytest.raises(ClipSourceError, match="allow_file_urls=true"):
        YtDlpSource().search_urls([url])

    source = local_source(allow_file_urls=True)
    candidate = only(source.search_urls([url]).candidates)
    assert probe_clip(source.fetch(candidate, tmp_path)).width == 320


def test_duration_cap_refuses_a_long_video_before_download(
    server: MediaServer, tmp_path: Path
) -> None:
    three_hours = server.add_page("long.html", json_ld_page(server.url("clip.mp4"), "PT3H"))
    source = local_source(max_duration_seconds=60)

    with pytest.raises(NoMatchesError, match=r"lasts 3:00:00, over max_duration_seconds \(60 s\)"):
        source.search_urls([three_hours])
    candidate = ClipCandidate(id="generic-long", source="ytdlp:generic", url=three_hours, title="x")
    with pytest.raises(ClipSourceError, match="refused before download"):
        source.fetch(candidate, tmp_path)

    assert server.count("clip.mp4") == 0


def test_duration_cap_discards_a_direct_link_that_proves_too_long(
    server: MediaServer, tmp_path: Path
) -> None:
    source = local_source(max_duration_seconds=3)
    candidate = only(source.search_urls([server.url("four.mp4")]).candidates)
    assert candidate.duration is None  # a bare file states no duration

    with pytest.raises(ClipSourceError, match=r"over max_duration_seconds.*discarded"):
        source.fetch(candidate, tmp_path)
    assert not [p for p in (cache_dir() / "downloads").rglob("*") if p.is_file()]


def test_allowed_extractors_refuse_other_extractors(server: MediaServer, tmp_path: Path) -> None:
    url = server.url("clip.mp4")
    source = local_source(allowed_extractors=["youtube", "tiktok"])

    with pytest.raises(NoMatchesError, match=r"extractor 'generic' is not in allowed_extractors"):
        source.search_urls([url])
    candidate = ClipCandidate(id="generic-clip", source="ytdlp:generic", url=url, title="x")
    with pytest.raises(ClipSourceError, match=r"'generic' is not in allowed_extractors"):
        source.fetch(candidate, tmp_path)
    assert sum(server.requests.values()) == 0

    assert local_source(allowed_extractors=["generic"]).search_urls([url]).candidates


# --- no network --------------------------------------------------------------------------


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Name resolution fails as it does offline: nothing can reach the internet."""
    real = socket.getaddrinfo

    def offline(host: Any, *args: Any, **kwargs: Any) -> Any:
        if str(host) in ("127.0.0.1", "localhost", "::1"):
            return real(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", offline)


@pytest.mark.timeout(20)
@pytest.mark.usefixtures("no_dns")
def test_offline_search_fails_fast_and_suggests_the_library() -> None:
    started = time.monotonic()

    with pytest.raises(ClipSourceError, match=r"ytdlp source.*--search-source library"):
        YtDlpSource(socket_timeout=5, retries=3).search(["football", "skills"], limit=5)

    assert time.monotonic() - started < 10


@pytest.mark.timeout(20)
@pytest.mark.usefixtures("no_dns")
def test_offline_url_list_fails_fast_and_suggests_the_library() -> None:
    with pytest.raises(ClipSourceError, match=r"cannot resolve www\.example\.com.*library"):
        YtDlpSource().search_urls(["https://www.example.com/watch/1"])


@pytest.mark.timeout(20)
@pytest.mark.usefixtures("no_dns")
def test_proxy_credentials_never_appear_in_messages(tmp_path: Path) -> None:
    # A proxy on a closed local port: every request fails at once, offline or not.
    proxy = "http://bob:hunter2-secret@127.0.0.1:9"
    source = YtDlpSource(proxy=proxy, retries=0, socket_timeout=2)
    messages = []
    for call in (
        lambda: source.search(["football"], limit=2),
        lambda: source.search_urls(["https://videos.example.com/v/1"]),
        lambda: source.fetch(
            ClipCandidate(
                id="generic-1",
                source="ytdlp:generic",
                url="https://bob:hunter2-secret@videos.example.com/v/1",
                title="x",
            ),
            tmp_path,
        ),
    ):
        with pytest.raises(ClipSourceError) as err:
            call()
        messages.append(str(err.value))

    for message in messages:
        assert "hunter2" not in message
        assert "bob:" not in message
    assert "proxy" in messages[0]
