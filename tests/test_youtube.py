"""The YouTube publisher against a local stand-in for Google's OAuth and upload endpoints.

Real HTTP (httpx2) to `tests/youtube_server.py`, which assembles the uploaded bytes, so the
tests check what YouTube would hold: the same bytes as the file, the metadata, the thumbnail
and the captions — and what happens when the server fails, the connection drops, the
session expires, the token is refused or the quota is used up.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from shorts_pipeline.models import PublishRequest
from shorts_pipeline.resources.publishing import Publisher, PublishError
from shorts_pipeline.resources.youtube import (
    ALREADY_UPLOADED,
    SHORTS_HASHTAG,
    YouTubePublisher,
    clean_description,
    clean_tags,
    clean_title,
    tags_length,
    video_metadata,
)
from tests.youtube_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    SECRETS,
    ChunkFault,
    YouTubeServer,
)

KIB = 1024
CHUNK = 256 * KIB
VIDEO_BYTES = 5 * CHUNK + 12_345  # five full chunks and a short last one
ENV = ("YOUTUBE_CLIENT_ID", "YOUTUBE_CLIENT_SECRET", "YOUTUBE_REFRESH_TOKEN")
PUBLISH_AT = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)

LONG_TITLE = (
    "Top 5 <b>football</b> skills you can learn this weekend in the park with friends "
    "and a ball and nothing else at all"
)
SRT = (
    "1\n00:00:00,000 --> 00:00:02,000\n드리블의 기본\n\n2\n00:00:02,000 --> 00:00:04,000\nBasics\n"
)


@pytest.fixture
def server():
    server = YouTubeServer().start()
    yield server
    server.stop()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YOUTUBE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("YOUTUBE_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("YOUTUBE_REFRESH_TOKEN", REFRESH_TOKEN)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    video = tmp_path / "video.mp4"
    video.write_bytes(random.Random(7).randbytes(VIDEO_BYTES))
    thumbnail = tmp_path / "thumbnail.jpg"
    Image.new("RGB", (1080, 1920), (200, 40, 40)).save(thumbnail, quality=80)
    subtitles = tmp_path / "video.srt"
    subtitles.write_text(SRT, encoding="utf-8")
    return {"video": video, "thumbnail": thumbnail, "subtitles": subtitles}


def make_request(files: dict[str, Path], **overrides) -> PublishRequest:
    fields = dict(
        project_key="top-5-football-skills",
        idempotency_key="top-5-football-skills:sha256:abc123",
        title=LONG_TITLE,
        description="Five skills <with> a ball.\nMade with shorts_pipeline.",
        tags=["football", "Football", "", "  skills ", "#freestyle", "a" * 31, "street football"],
        language="ko",
        publish_at=PUBLISH_AT,
        privacy="public",
        video_path=str(files["video"]),
        thumbnail_path=str(files["thumbnail"]),
        subtitles_path=str(files["subtitles"]),
        synthetic_media=True,
    )
    fields.update(overrides)
    return PublishRequest(**fields)


def make_publisher(server: YouTubeServer, **overrides) -> YouTubePublisher:
    config = dict(
        token_url=server.token_url,
        api_base=server.base_url,
        chunk_size_mb=0.25,
        retry_base_seconds=0.01,
        retry_max_seconds=0.05,
        timeout_seconds=5,
    )
    config.update(overrides)
    return YouTubePublisher(**config)


def chunk_starts(server: YouTubeServer) -> list[int]:
    return [int(r.content_range[6:].split("-")[0]) for r in server.chunk_requests()]


def assert_no_refused_requests(server: YouTubeServer) -> None:
    """The server refuses (400) a chunk that skips or repeats stored bytes."""
    assert [r for r in server.requests if r.status == 400] == []


# ---- the happy path ----------------------------------------------------------------------


def test_publish_uploads_the_exact_bytes_with_metadata_thumbnail_and_captions(
    server, credentials, files
):
    checkpoints: list[tuple[str, int]] = []
    request = make_request(files)

    published = make_publisher(server).publish(
        request, checkpoint=lambda uri: checkpoints.append((uri, len(server.chunk_requests())))
    )

    # the video YouTube holds is the file, byte for byte, sent in 256 KiB chunks in order
    stored = server.videos[published.video_id]
    assert bytes(stored.data) == files["video"].read_bytes()
    assert chunk_starts(server) == [i * CHUNK for i in range(6)]
    assert_no_refused_requests(server)
    create = server.session_creates()
    assert len(create) == 1
    assert create[0].headers["x-upload-content-length"] == str(VIDEO_BYTES)
    assert create[0].headers["x-upload-content-type"] == "video/mp4"
    assert create[0].query["part"] == "snippet,status"

    # the session URI was checkpointed before the first chunk
    assert len(checkpoints) == 1
    uri, chunks_before = checkpoints[0]
    assert chunks_before == 0
    assert uri.startswith(server.base_url) and "upload_id=" in uri
    assert published.details["session"] == uri

    # metadata as YouTube received it
    snippet, status = stored.metadata["snippet"], stored.metadata["status"]
    assert len(snippet["title"]) <= 100 and snippet["title"].endswith("…")
    assert "<" not in snippet["title"] and ">" not in snippet["title"]
    assert snippet["title"].startswith("Top 5 bfootball/b skills")
    assert SHORTS_HASHTAG not in snippet["title"]
    assert snippet["description"].endswith("\n\n#Shorts")
    assert "<" not in snippet["description"] and ">" not in snippet["description"]
    assert snippet["tags"] == ["football", "skills", "freestyle", "street football"]
    assert snippet["defaultLanguage"] == snippet["defaultAudioLanguage"] == "ko"
    assert snippet["categoryId"] == "22"
    assert status["privacyStatus"] == "private"
    assert status["publishAt"] == PUBLISH_AT.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert status["containsSyntheticMedia"] is True
    assert status["selfDeclaredMadeForKids"] is False

    # thumbnail and captions
    assert server.thumbnails[published.video_id] == (files["thumbnail"].read_bytes(), "image/jpeg")
    [caption] = server.captions
    assert caption.video_id == published.video_id
    assert caption.snippet == {"videoId": published.video_id, "language": "ko", "name": ""}
    assert caption.body.decode("utf-8") == SRT

    # what the caller gets back
    assert published.platform == "youtube"
    assert published.url == f"https://youtube.com/shorts/{published.video_id}"
    assert published.published_at == PUBLISH_AT
    assert published.idempotency_key == request.idempotency_key
    assert published.details["privacy"] == "private"
    assert published.details["publish_at"] == status["publishAt"]
    assert published.details["upload"] == "uploaded"
    assert published.details["thumbnail"] == "set"
    assert published.details["captions"].startswith("uploaded (ko")
    assert "tags left out" in published.details["notes"]


def test_youtube_publisher_satisfies_the_publisher_protocol(server):
    publisher: Publisher = make_publisher(server)
    assert publisher.name == "youtube"


def test_a_video_due_now_is_published_with_the_requested_privacy(server, credentials, files):
    request = make_request(files, publish_at=datetime.now(UTC) - timedelta(hours=1))
    published = make_publisher(server).publish(request)
    status = server.videos[published.video_id].metadata["status"]
    assert status["privacyStatus"] == "public"
    assert "publishAt" not in status
    assert published.details["publish_at"] == ""
    assert abs((published.published_at - datetime.now(UTC)).total_seconds()) < 30


# ---- interruptions -----------------------------------------------------------------------


def test_server_error_mid_upload_resumes_from_the_servers_offset(server, credentials, files):
    # 512 KiB chunks; chunk 3 (bytes 1 MiB..1.5 MiB) fails after the server kept 256 KiB of it
    server.chunk_faults[3] = ChunkFault(status=500, keep=CHUNK)
    published = make_publisher(server, chunk_size_mb=0.5).publish(make_request(files))

    assert bytes(server.videos[published.video_id].data) == files["video"].read_bytes()
    assert len(server.session_creates()) == 1
    assert len(server.status_queries()) == 1
    # 0, 512K, 1M (failed), then on from 1M+256K — what the server said it held
    assert chunk_starts(server) == [0, 2 * CHUNK, 4 * CHUNK, 5 * CHUNK]
    assert_no_refused_requests(server)


def test_dropped_connection_mid_upload_resumes_without_resending_earlier_chunks(
    server, credentials, files
):
    server.chunk_faults[2] = ChunkFault(status=None)  # connection closed, nothing kept
    published = make_publisher(server).publish(make_request(files))

    assert bytes(server.videos[published.video_id].data) == files["video"].read_bytes()
    assert [r.status for r in server.chunk_requests()][:3] == [308, None, 308]
    # chunk 2 is sent again (the server kept none of it); chunk 1 never is
    assert chunk_starts(server) == [0, CHUNK, CHUNK, 2 * CHUNK, 3 * CHUNK, 4 * CHUNK, 5 * CHUNK]
    assert len(server.status_queries()) == 1
    assert len(server.session_creates()) == 1


def test_expired_session_mid_upload_starts_one_new_session(server, credentials, files):
    server.expire_after_chunks = 2
    checkpoints: list[str] = []
    published = make_publisher(server).publish(make_request(files), checkpoint=checkpoints.append)

    assert len(server.session_creates()) == 2
    assert len(checkpoints) == 2 and checkpoints[0] != checkpoints[1]
    assert published.details["session"] == checkpoints[1]
    assert bytes(server.videos[published.video_id].data) == files["video"].read_bytes()
    assert "new session" in published.details["upload"]
    assert_no_refused_requests(server)


def test_repeated_failures_give_a_retryable_error_and_the_next_attempt_resumes(
    server, credentials, files
):
    for n in (3, 4, 5):  # chunk 3 fails, and so does every retry of it
        server.chunk_faults[n] = ChunkFault(status=503)
    checkpoints: list[str] = []
    publisher = make_publisher(server, max_retries=2)

    with pytest.raises(PublishError) as caught:
        publisher.publish(make_request(files), checkpoint=checkpoints.append)
    assert caught.value.retryable is True
    assert "503" in str(caught.value) and "resumes" in str(caught.value)
    assert server.videos == {}

    sent_before = len(server.chunk_requests())
    published = publisher.publish(make_request(files), resume=checkpoints[0])
    assert published.details["upload"] == "resumed"
    assert len(server.session_creates()) == 1
    # the second attempt starts with the chunk the server lacks, not from byte 0
    assert chunk_starts(server)[sent_before:] == [2 * CHUNK, 3 * CHUNK, 4 * CHUNK, 5 * CHUNK]
    assert bytes(server.videos[published.video_id].data) == files["video"].read_bytes()


def test_resuming_a_completed_upload_does_not_upload_again(server, credentials, files):
    checkpoints: list[str] = []
    publisher = make_publisher(server)
    first = publisher.publish(make_request(files), checkpoint=checkpoints.append)
    requests_before = len(server.requests)

    again = publisher.publish(make_request(files), resume=checkpoints[0])

    later = server.requests[requests_before:]
    assert again.video_id == first.video_id
    assert again.details["upload"] == ALREADY_UPLOADED
    assert len(server.videos) == 1
    assert not [r for r in later if r.body and r.method == "PUT"]  # no video bytes
    assert len([r for r in later if r.content_range]) == 1  # one status query
    assert len(server.session_creates()) == 1
    assert len(server.captions) == 1  # not added twice
    assert again.details["captions"].startswith("already there")


def test_a_retry_after_captions_failed_adds_them_without_uploading_again(
    server, credentials, files
):
    server.caption_error = (500, "backendError")
    checkpoints: list[str] = []
    publisher = make_publisher(server, max_retries=1)
    first = publisher.publish(make_request(files), checkpoint=checkpoints.append)
    assert first.details["captions"].startswith("failed:")
    assert server.captions == []

    server.caption_error = None
    again = publisher.publish(make_request(files), resume=checkpoints[0])
    assert again.video_id == first.video_id
    assert again.details["captions"].startswith("uploaded")
    assert len(server.captions) == 1
    assert len(server.chunk_requests()) == 6


def test_resuming_an_expired_session_starts_a_new_one(server, credentials, files):
    checkpoints: list[str] = []
    gone = f"{server.base_url}/upload/youtube/v3/videos?uploadType=resumable&upload_id=gone"
    published = make_publisher(server).publish(
        make_request(files), resume=gone, checkpoint=checkpoints.append
    )
    assert len(server.session_creates()) == 1
    assert checkpoints == [published.details["session"]] and checkpoints[0] != gone
    assert bytes(server.videos[published.video_id].data) == files["video"].read_bytes()


def test_an_expired_access_token_is_renewed_once(server, credentials, files):
    # the checkpoint runs after the session is created: revoke the token there
    published = make_publisher(server).publish(
        make_request(files), checkpoint=lambda uri: server.revoke_access_tokens()
    )
    assert len(server.requests_to("/token")) == 2
    assert [r.status for r in server.chunk_requests()][:2] == [401, 308]
    assert bytes(server.videos[published.video_id].data) == files["video"].read_bytes()


# ---- refusals ----------------------------------------------------------------------------


def test_invalid_refresh_token_is_a_clear_permanent_error(server, credentials, files):
    server.token_error = "invalid_grant"
    with pytest.raises(PublishError) as caught:
        make_publisher(server).publish(make_request(files))
    err = caught.value
    assert err.retryable is False
    assert err.reason == "invalid_grant" and err.status == 400
    assert "refresh token" in str(err) and "invalid, expired or revoked" in str(err)
    assert "youtube.upload" in str(err) and "YOUTUBE_REFRESH_TOKEN" in str(err)
    assert server.session_creates() == []


def test_quota_exceeded_is_retryable_at_the_next_tick(server, credentials, files):
    server.create_errors.append((403, "quotaExceeded"))
    checkpoints: list[str] = []
    with pytest.raises(PublishError) as caught:
        make_publisher(server).publish(make_request(files), checkpoint=checkpoints.append)
    err = caught.value
    assert err.retryable is True
    assert err.status == 403 and err.reason == "quotaExceeded"
    assert "quota" in str(err) and "retried at the next schedule tick" in str(err)
    assert checkpoints == [] and server.chunk_requests() == []


def test_upload_limit_is_a_permanent_error_with_the_api_reason(server, credentials, files):
    server.create_errors.append((400, "uploadLimitExceeded"))
    with pytest.raises(PublishError) as caught:
        make_publisher(server).publish(make_request(files))
    assert caught.value.retryable is False
    assert "HTTP 400, uploadLimitExceeded" in str(caught.value)
    assert "24 hours" in str(caught.value)


def test_a_thumbnail_refusal_is_recorded_and_the_video_stays_published(server, credentials, files):
    server.thumbnail_error = (403, "forbidden")
    published = make_publisher(server).publish(make_request(files))
    assert published.video_id in server.videos
    assert published.details["thumbnail"].startswith("failed:")
    assert "403" in published.details["thumbnail"] and "verified" in published.details["thumbnail"]
    assert published.details["captions"].startswith("uploaded")


def test_missing_credentials_name_the_environment_variables(server, files, monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(PublishError) as caught:
        make_publisher(server).publish(make_request(files))
    assert caught.value.retryable is False
    for name in ENV:
        assert name in str(caught.value)
    assert server.requests == []

    monkeypatch.setenv("YOUTUBE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("YOUTUBE_CLIENT_SECRET", CLIENT_SECRET)
    with pytest.raises(PublishError, match="YOUTUBE_REFRESH_TOKEN is not set"):
        make_publisher(server).publish(make_request(files))


def test_a_chunk_size_youtube_refuses_is_reported_before_any_call(server, credentials, files):
    with pytest.raises(PublishError, match="256 KiB"):
        make_publisher(server, chunk_size_mb=0.3).publish(make_request(files))
    assert server.requests == []


def test_secrets_never_appear_in_errors_logs_or_details(server, credentials, files, caplog):
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    server.chunk_faults[2] = ChunkFault(status=500)
    published = make_publisher(server).publish(
        make_request(files), checkpoint=lambda uri: server.revoke_access_tokens()
    )
    messages += list(published.details.values())
    for fault in ("invalid_grant", "invalid_client", "500"):
        server.token_error = fault
        with pytest.raises(PublishError) as caught:
            make_publisher(server, max_retries=1).publish(make_request(files))
        messages.append(str(caught.value))
    server.token_error = None
    server.create_errors.append((403, "quotaExceeded"))
    with pytest.raises(PublishError) as caught:
        make_publisher(server).publish(make_request(files))
    messages.append(str(caught.value))

    assert "YouTube: HTTP 500" in caplog.text  # the retry was logged…
    for secret in SECRETS:
        assert secret not in caplog.text  # …without any credential
        for message in messages:
            assert secret not in message
    assert CLIENT_SECRET not in repr(
        make_publisher(server, client_secret=CLIENT_SECRET)._credentials()
    )


# ---- metadata rules ----------------------------------------------------------------------


def test_titles_are_cut_at_a_word_boundary_and_cleaned():
    assert clean_title("  Short <i>title</i>\n") == "Short ititle/i"
    cut = clean_title("word " * 40)
    assert len(cut) <= 100 and cut.endswith("word…")
    korean = clean_title("드리블" * 50)  # no spaces: cut where the limit falls
    assert len(korean) == 100 and korean.endswith("…")


def test_descriptions_fit_5000_bytes_and_keep_one_shorts_hashtag():
    assert clean_description("") == "#Shorts"
    assert clean_description("Already #shorts here").count("#") == 1
    assert clean_description("no tag", add_shorts_hashtag=False) == "no tag"
    long = clean_description("드리블 연습 " * 1000)  # 3 bytes per syllable
    assert len(long.encode()) <= 5000
    assert long.endswith("…\n\n#Shorts")


def test_tags_follow_youtubes_500_character_rule():
    # "street football" counts 17 (quotes), plus a comma: 8 + 1 + 17 = 26
    assert tags_length(["football", "street football"]) == 26
    many = [f"tag number {i}" for i in range(60)]  # 12-13 characters + 2 quotes each
    kept, dropped = clean_tags(many)
    assert tags_length(kept) <= 500 and dropped
    assert kept == many[: len(kept)]
    assert clean_tags(["a,b", "<x>", "#Shorts", "shorts"]) == (["a b", "x", "Shorts"], [])


def test_a_private_video_with_a_publish_time_stays_private_without_publish_at(files):
    meta = video_metadata(make_request(files, privacy="unlisted"))
    assert meta.body["status"]["privacyStatus"] == "unlisted"
    assert "publishAt" not in meta.body["status"]
    assert meta.scheduled_at is None and "publish_at ignored" in meta.notes[-1]


def test_an_empty_title_is_refused_before_any_call(server, credentials, files):
    with pytest.raises(PublishError, match="title is empty"):
        make_publisher(server).publish(make_request(files, title=" <> "))
    assert server.requests == []
