"""The local channel publisher: files copied atomically, RSS and JSON feeds that parse and list
every item newest first, exactly once per idempotency key, safe with concurrent publishers."""

import json
import multiprocessing
import os
import threading
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from shorts_pipeline.models import PublishRequest
from shorts_pipeline.resources.channel import LocalChannelPublisher, video_id_for
from shorts_pipeline.resources.publishing import PublishError

MEDIA_NS = "{http://search.yahoo.com/mrss/}"


def make_request(
    media: Path, key: str, *, title: str = "A short", size: int = 5000, **fields: object
) -> PublishRequest:
    """A request with real files: `size` bytes of video, a thumbnail and an SRT."""
    media.mkdir(parents=True, exist_ok=True)
    video = media / f"{key}.mp4"
    video.write_bytes(os.urandom(size))
    thumb = media / f"{key}.jpg"
    thumb.write_bytes(b"\xff\xd8\xff" + os.urandom(300))
    srt = media / f"{key}.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,500\n안녕하세요 🔥\n", encoding="utf-8")
    values: dict[str, object] = dict(
        project_key=key,
        idempotency_key=f"{key}@local",
        title=title,
        description=f"About {title}",
        tags=["football", "skills"],
        video_path=str(video),
        thumbnail_path=str(thumb),
        subtitles_path=str(srt),
    )
    values.update(fields)
    return PublishRequest.model_validate(values)


def read_feeds(channel: Path) -> tuple[dict, ET.Element]:
    feed = json.loads((channel / "feed.json").read_text(encoding="utf-8"))
    rss = ET.parse(channel / "feed.xml").getroot()
    return feed, rss


def local_file(url: str) -> Path:
    parts = urlsplit(url)
    assert parts.scheme == "file"
    return Path(unquote(parts.path))


def leftovers(channel: Path) -> list[Path]:
    return [p for p in channel.rglob("*") if p.name.endswith(".part")]


def test_two_publications_are_listed_newest_first_in_both_feeds(tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    publisher = LocalChannelPublisher(directory=str(channel), channel_title="My Shorts")
    january = datetime(2026, 1, 5, 12, 30, tzinfo=UTC)
    february = datetime(2026, 2, 5, 8, 0, tzinfo=UTC)
    # Published out of date order: the feeds order by publish time, not by call order.
    newer = publisher.publish(
        make_request(tmp_path / "in", "second-b2", title="Second", publish_at=february)
    )
    older = publisher.publish(
        make_request(tmp_path / "in", "first-a1", title="First", size=7777, publish_at=january)
    )

    assert older.platform == "local" and older.video_id == video_id_for("first-a1@local")
    assert older.published_at == january
    assert local_file(older.url).read_bytes() == (tmp_path / "in/first-a1.mp4").read_bytes()
    assert local_file(older.url).parent == channel / "videos" / "first-a1"

    feed, rss = read_feeds(channel)
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["title"] == "My Shorts"
    assert [i["id"] for i in feed["items"]] == ["second-b2@local", "first-a1@local"]
    first = feed["items"][1]
    assert first["title"] == "First" and first["content_text"] == "About First"
    assert first["tags"] == ["football", "skills"]
    assert first["date_published"] == "2026-01-05T12:30:00Z"
    assert first["url"] == older.url
    assert local_file(first["image"]).read_bytes().startswith(b"\xff\xd8\xff")
    video_att, srt_att = first["attachments"]
    assert video_att["mime_type"] == "video/mp4" and video_att["size_in_bytes"] == 7777
    assert srt_att["mime_type"] == "application/x-subrip"
    assert "안녕하세요" in local_file(srt_att["url"]).read_text(encoding="utf-8")

    assert rss.tag == "rss" and rss.get("version") == "2.0"
    ch = rss.find("channel")
    assert ch is not None
    assert ch.findtext("title") == "My Shorts"
    assert ch.findtext("link") and ch.findtext("description")
    assert parsedate_to_datetime(ch.findtext("lastBuildDate") or "").tzinfo is not None
    items = ch.findall("item")
    assert [i.findtext("title") for i in items] == ["Second", "First"]
    guid = items[1].find("guid")
    assert guid is not None and guid.text == "first-a1@local"
    assert guid.get("isPermaLink") == "false"
    assert parsedate_to_datetime(items[1].findtext("pubDate") or "") == january
    assert parsedate_to_datetime(items[0].findtext("pubDate") or "") == february
    enclosure = items[1].find("enclosure")
    assert enclosure is not None and enclosure.get("type") == "video/mp4"
    enclosed = local_file(enclosure.get("url") or "")
    assert int(enclosure.get("length") or 0) == enclosed.stat().st_size == 7777
    assert [c.text for c in items[1].findall("category")] == ["football", "skills"]
    thumbnail = items[1].find(f"{MEDIA_NS}thumbnail")
    assert thumbnail is not None and local_file(thumbnail.get("url") or "").exists()

    assert newer.url != older.url
    assert leftovers(channel) == []


def test_a_publication_without_publish_time_is_dated_now_and_comes_first(tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    publisher = LocalChannelPublisher(directory=str(channel))
    past = datetime.now(UTC) - timedelta(days=3)
    publisher.publish(make_request(tmp_path / "in", "old-one", publish_at=past))
    before = datetime.now(UTC)
    fresh = publisher.publish(make_request(tmp_path / "in", "fresh-one"))
    assert before - timedelta(seconds=1) <= fresh.published_at <= datetime.now(UTC)
    feed, _ = read_feeds(channel)
    assert [i["id"] for i in feed["items"]] == ["fresh-one@local", "old-one@local"]


def test_titles_with_markup_hangul_and_emoji_are_escaped_and_round_trip(tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    title = 'Top 5 <goals> & "tricks" ⚽🔥 축구 기술 ]]>'
    description = "Line one & <b>two</b>\n\n#축구 #skills\x07"
    LocalChannelPublisher(directory=str(channel), channel_title="Kim & Lee <채널>").publish(
        make_request(
            tmp_path / "in",
            "tricky-9f",
            title=title,
            description=description,
            tags=["R&D", "<script>", "한국어"],
        )
    )

    raw = (channel / "feed.xml").read_bytes()
    assert raw.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert b"&lt;goals&gt; &amp;" in raw and b"<goals>" not in raw
    assert "축구 기술".encode() in raw and "🔥".encode() in raw

    feed, rss = read_feeds(channel)
    ch = rss.find("channel")
    assert ch is not None and ch.findtext("title") == "Kim & Lee <채널>"
    item = ch.find("item")
    assert item is not None
    assert item.findtext("title") == title
    # XML 1.0 cannot carry the BEL control character: it is dropped, the rest survives.
    assert item.findtext("description") == description.replace("\x07", "")
    assert [c.text for c in item.findall("category")] == ["R&D", "<script>", "한국어"]
    assert feed["title"] == "Kim & Lee <채널>"
    assert feed["items"][0]["title"] == title
    assert feed["items"][0]["content_text"] == description
    assert feed["items"][0]["tags"] == ["R&D", "<script>", "한국어"]


def test_publishing_the_same_key_again_returns_the_first_publication(tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    publisher = LocalChannelPublisher(directory=str(channel))
    request = make_request(tmp_path / "in", "once-only")
    first = publisher.publish(request)
    files_before = sorted(p.relative_to(channel) for p in (channel / "videos").rglob("*"))

    # A retry, even after the source files are gone (the media store was cleaned up).
    Path(request.video_path).unlink()
    again = publisher.publish(request)
    third = LocalChannelPublisher(directory=str(channel)).publish(request)

    assert again == first and third == first
    assert publisher.find("once-only@local") == first
    assert publisher.find("never-published@local") is None
    files_after = sorted(p.relative_to(channel) for p in (channel / "videos").rglob("*"))
    assert files_after == files_before
    feed, rss = read_feeds(channel)
    assert [i["id"] for i in feed["items"]] == ["once-only@local"]
    assert len(rss.findall("channel/item")) == 1
    assert len(json.loads((channel / "items.json").read_text())["items"]) == 1


def test_a_lost_feed_is_rebuilt_from_the_items_on_the_next_attempt(tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    publisher = LocalChannelPublisher(directory=str(channel))
    request = make_request(tmp_path / "in", "rebuilt")
    publisher.publish(request)
    (channel / "feed.xml").unlink()
    publisher.publish(request)
    _, rss = read_feeds(channel)
    assert [g.text for g in rss.findall("channel/item/guid")] == ["rebuilt@local"]


def _publish_in_a_process(directory: str, media: str, keys: list[str]) -> None:
    publisher = LocalChannelPublisher(directory=directory)
    for key in keys:
        publisher.publish(make_request(Path(media), key))


def test_concurrent_publishers_lose_no_item(tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    media = tmp_path / "in"
    thread_keys = [f"thread-{n}" for n in range(6)]
    process_keys = [[f"proc-{p}-{n}" for n in range(3)] for p in range(2)]

    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=_publish_in_a_process, args=(str(channel), str(media), keys))
        for keys in process_keys
    ]
    errors: list[BaseException] = []

    def publish_one(key: str) -> None:
        try:
            LocalChannelPublisher(directory=str(channel)).publish(
                make_request(media, key, size=200_000)
            )
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=publish_one, args=(k,)) for k in thread_keys]
    for process in processes:
        process.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    for process in processes:
        process.join(timeout=20)

    assert errors == []
    assert [p.exitcode for p in processes] == [0, 0]
    expected = {f"{k}@local" for k in thread_keys + [k for ks in process_keys for k in ks]}
    feed, rss = read_feeds(channel)
    assert {i["id"] for i in feed["items"]} == expected
    assert len(feed["items"]) == len(expected)
    assert {g.text for g in rss.findall("channel/item/guid")} == expected
    for item in feed["items"]:
        video = item["attachments"][0]
        assert local_file(video["url"]).stat().st_size == video["size_in_bytes"]
    assert leftovers(channel) == []


def test_a_missing_video_is_a_clear_error_that_is_not_retried(tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    publisher = LocalChannelPublisher(directory=str(channel))
    request = make_request(tmp_path / "in", "no-video")
    Path(request.video_path).unlink()

    with pytest.raises(PublishError) as caught:
        publisher.publish(request)

    assert caught.value.retryable is False
    assert request.video_path in str(caught.value)
    assert not (channel / "items.json").exists()
    assert not (channel / "videos").exists()
    assert leftovers(channel) == []


def test_a_missing_thumbnail_is_an_error_too(tmp_path: Path) -> None:
    request = make_request(tmp_path / "in", "no-thumb")
    Path(request.thumbnail_path or "").unlink()
    with pytest.raises(PublishError, match="thumbnail") as caught:
        LocalChannelPublisher(directory=str(tmp_path / "channel")).publish(request)
    assert caught.value.retryable is False


def test_an_unsafe_project_key_is_refused(tmp_path: Path) -> None:
    request = make_request(tmp_path / "in", "fine").model_copy(update={"project_key": "../up"})
    with pytest.raises(PublishError, match="not a project key") as caught:
        LocalChannelPublisher(directory=str(tmp_path / "channel")).publish(request)
    assert caught.value.retryable is False
    assert not (tmp_path / "up").exists()


def test_base_url_makes_public_links(tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    publisher = LocalChannelPublisher(
        directory=str(channel), base_url="https://cdn.example.test/channel/"
    )
    published = publisher.publish(make_request(tmp_path / "in", "web-one"))
    vid = published.video_id
    assert published.url == f"https://cdn.example.test/channel/videos/web-one/{vid}.mp4"
    assert published.details["thumbnail_url"].endswith(f"/videos/web-one/{vid}.jpg")
    assert published.details["feed_rss"] == "https://cdn.example.test/channel/feed.xml"
    feed, rss = read_feeds(channel)
    assert feed["feed_url"] == "https://cdn.example.test/channel/feed.json"
    assert feed["items"][0]["url"] == published.url
    assert rss.findtext("channel/link") == "https://cdn.example.test/channel/"
    enclosure = rss.find("channel/item/enclosure")
    assert enclosure is not None and enclosure.get("url") == published.url


def test_private_and_unlisted_videos_stay_out_of_the_feeds(tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    publisher = LocalChannelPublisher(directory=str(channel))
    public = publisher.publish(make_request(tmp_path / "in", "shown"))
    hidden = publisher.publish(make_request(tmp_path / "in", "hidden", privacy="private"))
    unlisted = publisher.publish(make_request(tmp_path / "in", "unlisted", privacy="unlisted"))
    assert local_file(hidden.url).exists() and local_file(unlisted.url).exists()
    assert hidden.details["privacy"] == "private"
    feed, rss = read_feeds(channel)
    assert [i["url"] for i in feed["items"]] == [public.url]
    assert [g.text for g in rss.findall("channel/item/guid")] == ["shown@local"]


def test_default_channel_folder_is_under_shorts_home(tmp_path: Path, shorts_home: Path) -> None:
    published = LocalChannelPublisher().publish(make_request(tmp_path / "in", "home-one"))
    assert local_file(published.url).is_relative_to(shorts_home.resolve() / "channel")
    assert (shorts_home / "channel" / "feed.xml").exists()
    assert LocalChannelPublisher().name == "local"
