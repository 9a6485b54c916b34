"""The fal.ai queue client against a local stand-in for fal's queue API.

Real HTTP (httpx2) to `tests/fal_server.py`, which makes real MP4s with ffmpeg, so the tests
check what would land on disk — ffprobed — and what fal would have received: the nested model
path, the key, the image as a data URI, the polls on the URLs fal handed out, the cancel —
and what happens when the key is wrong, the content checker refuses, the server fails, the
request never finishes or the file is not a video.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from shorts_pipeline.resources.fal import (
    ContentRejected,
    FalClient,
    FalResult,
    VideoGenError,
    image_data_uri,
)
from tests.fal_server import FAL_TEST_KEY, FalServer
from tests.helpers import frame_at, free_port

TEXT_MODEL = "fal-ai/kling-video/v2.1/master/text-to-video"
IMAGE_MODEL = "fal-ai/kling-video/v2.1/standard/image-to-video"
SMALL = {"resolution": "360p", "aspect_ratio": "9:16", "duration": "2"}  # 360x640, 2 s
WRONG_KEY = "fal-wrong-key-id:wrong-secret-never-printed"


@pytest.fixture
def fal_server():
    server = FalServer().start()
    yield server
    server.stop()


def make_client(server: FalServer, **overrides: Any) -> FalClient:
    config: dict[str, Any] = dict(
        api_key=FAL_TEST_KEY,
        queue_url=server.base_url,
        poll_interval=0.05,
        timeout_seconds=30,
        request_timeout=10,
    )
    config.update(overrides)
    return FalClient(**config)


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(out)
    [video] = [s for s in data["streams"] if s["codec_type"] == "video"]
    return {
        "codec": video["codec_name"],
        "pix_fmt": video["pix_fmt"],
        "width": video["width"],
        "height": video["height"],
        "fps": video["r_frame_rate"],
        "duration": float(data["format"]["duration"]),
    }


def start_image(path: Path, size: tuple[int, int] = (360, 640)) -> Path:
    """A picture with distinct regions, so motion and the first frame can be checked."""
    image = Image.new("RGB", size, (60, 110, 170))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle((w * 0.15, h * 0.15, w * 0.85, h * 0.45), fill=(230, 200, 40))
    draw.ellipse((w * 0.3, h * 0.6, w * 0.7, h * 0.85), fill=(200, 40, 70))
    image.save(path)
    return path


def mean_rgb(image: Image.Image) -> tuple[float, float, float]:
    r, g, b = ImageStat.Stat(image.convert("RGB")).mean
    return r, g, b


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, in 8-bit levels."""
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


def assert_key_hidden(*texts: str) -> None:
    for text in texts:
        for secret in (FAL_TEST_KEY, WRONG_KEY, "never-printed"):
            assert secret not in text


# ---- the happy paths -------------------------------------------------------------------------


def test_text_to_video_downloads_a_real_mp4_through_the_queue(fal_server, tmp_path):
    lines: list[str] = []
    dest = tmp_path / "segments" / "seg-1.mp4"

    result = make_client(fal_server).generate(
        TEXT_MODEL,
        {"prompt": "a red kite over a beach", **SMALL},
        dest,
        what="segment 1/6",
        on_status=lines.append,
    )

    assert isinstance(result, FalResult)
    assert result.path == dest and dest.is_file()
    assert ffprobe(dest) == {
        "codec": "h264",
        "pix_fmt": "yuv420p",
        "width": 360,
        "height": 640,
        "fps": "30/1",
        "duration": pytest.approx(2.0, abs=0.05),
    }
    assert leftovers(dest.parent) == []
    # the status lines a person sees, in order, each once
    assert lines == ["IN_QUEUE (position 1)", "IN_QUEUE (position 0)", "IN_PROGRESS", "COMPLETED"]
    assert result.model == TEXT_MODEL
    assert result.wait_seconds > 0
    assert result.details["content_type"] == "video/mp4"
    assert result.details["file_size"] == str(dest.stat().st_size)
    assert result.details["seed"] == "1234567"
    assert (result.details["width"], result.details["height"]) == ("360", "640")

    # what fal received: the full model path, the key, the arguments as JSON
    [submit] = fal_server.submits()
    assert submit.path == "/" + TEXT_MODEL
    assert submit.authorized
    assert submit.body == {"prompt": "a red kite over a beach", **SMALL}
    assert result.request_id in fal_server.jobs
    # status and result on the URLs fal handed out (owner/app only, no sub-path)
    polls = fal_server.status_polls()
    assert len(polls) >= 4
    assert {p.path for p in polls} == {f"/fal-ai/kling-video/requests/{result.request_id}/status"}
    assert all(r.authorized for r in fal_server.requests if not r.path.startswith("/files/"))
    # the file comes from the CDN without the key
    [download] = fal_server.downloads()
    assert not download.authorized
    assert fal_server.cancels() == []


def test_image_to_video_sends_the_image_as_a_data_uri_and_starts_from_it(fal_server, tmp_path):
    image = start_image(tmp_path / "start.png")
    uri = image_data_uri(image)
    lines: list[str] = []
    dest = tmp_path / "seg-2.mp4"

    result = make_client(fal_server).generate(
        IMAGE_MODEL,
        {"prompt": "the kite climbs", "image_url": uri, **SMALL},
        dest,
        what="segment 2/6",
        on_status=lines.append,
    )

    [submit] = fal_server.submits()
    assert submit.path == "/" + IMAGE_MODEL
    assert submit.body["image_url"] == uri
    assert uri.startswith("data:image/png;base64,")
    assert "IN_PROGRESS" in lines and any(line.startswith("IN_QUEUE") for line in lines)
    probed = ffprobe(result.path)
    assert (probed["width"], probed["height"]) == (360, 640)
    assert probed["duration"] == pytest.approx(2.0, abs=0.05)
    first = frame_at(dest, 0, tmp_path / "first.png")
    last = frame_at(dest, 1.9, tmp_path / "last.png")
    source = Image.open(image)
    assert mean_difference(first, source) < 4  # the first frame is the input
    assert mean_difference(last, first) > 8  # and it moves


def test_drift_adds_a_colour_cast_that_accumulates_along_a_chain(fal_server, tmp_path):
    fal_server.drift = (6.0, 0.0, -6.0)
    base = Image.new("RGB", (360, 640), (120, 128, 136))
    ImageDraw.Draw(base).rectangle((150, 280, 210, 360), fill=(100, 140, 120))
    base.save(tmp_path / "base.png")
    client = make_client(fal_server)

    reference = tmp_path / "base.png"
    firsts = []
    for k in (1, 2):
        out = client.generate(
            IMAGE_MODEL,
            {"prompt": "continue", "image_url": image_data_uri(reference), **SMALL},
            tmp_path / f"chain-{k}.mp4",
            what=f"segment {k}/2",
        ).path
        firsts.append(mean_rgb(frame_at(out, 0, tmp_path / f"first-{k}.png")))
        reference = tmp_path / f"last-{k}.png"
        frame_at(out, 1.95, reference)

    r0, g0, b0 = mean_rgb(base)
    (r1, _, b1), (r2, g2, b2) = firsts
    assert r1 - r0 == pytest.approx(6, abs=2) and b1 - b0 == pytest.approx(-6, abs=2)
    assert r2 - r0 == pytest.approx(12, abs=3) and b2 - b0 == pytest.approx(-12, abs=3)
    assert g2 - g0 == pytest.approx(0, abs=2)


def test_the_fake_can_answer_with_the_wrong_size_and_length(fal_server, tmp_path):
    """The client reports what it got; judging it against the plan is the caller's job."""
    fal_server.size = (640, 360)
    fal_server.seconds_override = 1.5

    result = make_client(fal_server).generate(
        TEXT_MODEL, {"prompt": "a beach", **SMALL}, tmp_path / "odd.mp4", what="segment 1/2"
    )

    probed = ffprobe(result.path)
    assert (probed["width"], probed["height"]) == (640, 360)
    assert probed["duration"] == pytest.approx(1.5, abs=0.05)
    assert result.details["width"] == "640"
    assert float(result.details["duration"]) == pytest.approx(1.5, abs=0.05)


# ---- refusals: not retryable -------------------------------------------------------------


def test_a_missing_key_is_refused_before_any_request(fal_server, tmp_path):
    with pytest.raises(VideoGenError) as caught:
        make_client(fal_server, api_key="").generate(
            TEXT_MODEL, {"prompt": "x"}, tmp_path / "v.mp4", what="segment 1/6"
        )
    assert "FAL_KEY" in str(caught.value) and "segment 1/6" in str(caught.value)
    assert not caught.value.retryable
    assert fal_server.requests == []


def test_a_wrong_key_is_a_clear_error_that_does_not_retry(fal_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client(fal_server, api_key=WRONG_KEY)

    with pytest.raises(VideoGenError) as caught:
        client.generate(TEXT_MODEL, {"prompt": "x"}, tmp_path / "v.mp4", what="segment 1/6")

    message = str(caught.value)
    assert not caught.value.retryable
    assert not isinstance(caught.value, ContentRejected)
    assert "FAL_KEY was rejected" in message and "HTTP 401" in message
    assert "segment 1/6" in message and TEXT_MODEL in message and fal_server.base_url[7:] in message
    assert len(fal_server.requests) == 1  # one submit, not repeated
    assert not (tmp_path / "v.mp4").exists()
    assert_key_hidden(message, repr(caught.value), repr(client), caplog.text)


def test_a_content_policy_refusal_names_the_segment_and_the_reason(fal_server, tmp_path):
    fal_server.reject_prompts_containing = "explosion"
    dest = tmp_path / "v.mp4"

    with pytest.raises(ContentRejected) as caught:
        make_client(fal_server).generate(
            IMAGE_MODEL, {"prompt": "a huge explosion", **SMALL}, dest, what="segment 3/6"
        )

    message = str(caught.value)
    assert not caught.value.retryable
    assert "segment 3/6" in message and IMAGE_MODEL in message
    assert "content checker" in message and "change the prompt" in message
    assert not dest.exists() and leftovers(tmp_path) == []
    assert fal_server.downloads() == []
    assert fal_server.cancels() == []  # it had completed: nothing to cancel
    assert_key_hidden(message)


def test_a_content_policy_refusal_at_submission_is_content_rejected_too(fal_server, tmp_path):
    fal_server.reject_prompts_containing = "explosion"
    fal_server.rejection_stage = "submit"

    with pytest.raises(ContentRejected) as caught:
        make_client(fal_server).generate(
            TEXT_MODEL, {"prompt": "Explosion!"}, tmp_path / "v.mp4", what="segment 1/6"
        )

    assert "segment 1/6" in str(caught.value) and "content checker" in str(caught.value)
    assert fal_server.status_polls() == []


def test_refused_arguments_are_not_retryable_and_quote_fals_detail(fal_server, tmp_path):
    with pytest.raises(VideoGenError) as caught:
        make_client(fal_server).generate(
            TEXT_MODEL, {"duration": "5"}, tmp_path / "v.mp4", what="segment 1/6"
        )

    assert not isinstance(caught.value, ContentRejected)
    assert not caught.value.retryable
    assert "HTTP 422" in str(caught.value) and "prompt: Field required" in str(caught.value)


# ---- failures that may pass: retryable ------------------------------------------------------


def test_a_server_error_on_submit_is_retryable_and_not_resubmitted_by_the_client(
    fal_server, tmp_path
):
    fal_server.fail_submits = 1
    client = make_client(fal_server)
    dest = tmp_path / "v.mp4"

    with pytest.raises(VideoGenError) as caught:
        client.generate(TEXT_MODEL, {"prompt": "x", **SMALL}, dest, what="segment 1/6")
    assert caught.value.retryable
    assert "HTTP 500" in str(caught.value) and "segment 1/6" in str(caught.value)
    assert len(fal_server.submits()) == 1  # never twice: a second submit may be billed

    # the caller's retry goes through
    assert client.generate(TEXT_MODEL, {"prompt": "x", **SMALL}, dest, what="segment 1/6")
    assert dest.is_file() and len(fal_server.submits()) == 2


def test_one_failed_status_poll_is_retried_at_once(fal_server, tmp_path):
    fal_server.fail_status_polls = 1
    result = make_client(fal_server).generate(
        TEXT_MODEL, {"prompt": "x", **SMALL}, tmp_path / "v.mp4", what="segment 1/6"
    )
    assert result.path.is_file()
    assert [p.status for p in fal_server.status_polls()][:2] == [500, 202]


def test_status_polls_failing_twice_give_up_retryably_and_cancel(fal_server, tmp_path):
    fal_server.fail_status_polls = 2
    with pytest.raises(VideoGenError) as caught:
        make_client(fal_server).generate(
            TEXT_MODEL, {"prompt": "x", **SMALL}, tmp_path / "v.mp4", what="segment 1/6"
        )
    assert caught.value.retryable
    assert "checking the status" in str(caught.value)
    assert len(fal_server.cancels()) == 1


def test_an_unreachable_queue_is_retryable_and_names_the_host(tmp_path):
    port = free_port()
    client = FalClient(api_key=FAL_TEST_KEY, queue_url=f"http://127.0.0.1:{port}")
    with pytest.raises(VideoGenError) as caught:
        client.generate(TEXT_MODEL, {"prompt": "x"}, tmp_path / "v.mp4", what="segment 4/6")
    assert caught.value.retryable
    assert f"127.0.0.1:{port}" in str(caught.value) and "segment 4/6" in str(caught.value)
    assert_key_hidden(str(caught.value))


# ---- the time limit, and results that are not a video ------------------------------------------


def test_a_request_that_never_finishes_hits_the_time_limit_and_is_cancelled(fal_server, tmp_path):
    fal_server.hang = True
    lines: list[str] = []

    with pytest.raises(VideoGenError) as caught:
        make_client(fal_server, timeout_seconds=0.4).generate(
            TEXT_MODEL,
            {"prompt": "x"},
            tmp_path / "v.mp4",
            what="segment 5/6",
            on_status=lines.append,
        )

    message = str(caught.value)
    assert not caught.value.retryable
    assert "segment 5/6" in message and "0.4 s" in message and "fal_timeout_seconds" in message
    assert lines[-1] == "IN_PROGRESS"
    [cancel] = fal_server.cancels()
    job = next(iter(fal_server.jobs.values()))
    assert cancel.path == f"/fal-ai/kling-video/requests/{job.request_id}/cancel"
    assert cancel.authorized and cancel.status == 202 and job.cancelled
    assert not (tmp_path / "v.mp4").exists()


def test_a_corrupt_file_is_an_error_and_leaves_nothing_behind(fal_server, tmp_path):
    fal_server.corrupt = True
    dest = tmp_path / "out" / "v.mp4"

    with pytest.raises(VideoGenError) as caught:
        make_client(fal_server).generate(
            TEXT_MODEL, {"prompt": "x", **SMALL}, dest, what="segment 2/6"
        )

    assert "not a usable video" in str(caught.value) and "segment 2/6" in str(caught.value)
    assert caught.value.retryable
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temporary file either


def test_a_download_over_the_size_cap_is_refused_and_removed(fal_server, tmp_path):
    dest = tmp_path / "out" / "v.mp4"
    with pytest.raises(VideoGenError) as caught:
        make_client(fal_server, max_download_bytes=1000).generate(
            TEXT_MODEL, {"prompt": "x", **SMALL}, dest, what="segment 1/6"
        )
    assert "max_download_bytes" in str(caught.value)
    assert list(dest.parent.iterdir()) == []


def test_a_result_without_a_video_is_an_error(fal_server, tmp_path):
    fal_server.result_override = {"images": [{"url": "http://127.0.0.1/x.png"}]}
    with pytest.raises(VideoGenError) as caught:
        make_client(fal_server).generate(
            TEXT_MODEL, {"prompt": "x", **SMALL}, tmp_path / "v.mp4", what="segment 1/6"
        )
    assert "no video URL" in str(caught.value) and "images" in str(caught.value)


def test_a_file_url_in_the_result_is_never_read(fal_server, tmp_path):
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"local file")
    fal_server.result_override = {"video": {"url": secret.as_uri()}}
    dest = tmp_path / "v.mp4"

    with pytest.raises(VideoGenError) as caught:
        make_client(fal_server).generate(
            TEXT_MODEL, {"prompt": "x", **SMALL}, dest, what="segment 1/6"
        )

    assert "not http(s)" in str(caught.value)
    assert not dest.exists()


# ---- the key and the image helper ---------------------------------------------------------------


def test_the_key_appears_in_no_message_log_or_repr(fal_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client(fal_server)
    fal_server.reject_prompts_containing = "nope"
    errors = []
    for arguments in ({"prompt": "nope"}, {"duration": "5"}):
        with pytest.raises(VideoGenError) as caught:
            client.generate(TEXT_MODEL, arguments, tmp_path / "v.mp4", what="segment 1/6")
        errors.append(caught.value)
    client.generate(TEXT_MODEL, {"prompt": "fine", **SMALL}, tmp_path / "v.mp4", what="s 1/6")

    assert "***" in repr(client)
    assert_key_hidden(repr(client), caplog.text, *(str(e) for e in errors))
    assert all(FAL_TEST_KEY not in json.dumps(r.headers) for r in fal_server.requests)


def test_image_data_uri_encodes_png_and_jpeg_and_refuses_other_files(tmp_path):
    png = start_image(tmp_path / "a.png", (32, 32))
    jpeg = tmp_path / "a.jpg"
    Image.open(png).save(jpeg, quality=90)
    text = tmp_path / "a.txt"
    text.write_text("not an image")

    assert image_data_uri(png).startswith("data:image/png;base64,iVBORw0KGgo")
    assert image_data_uri(jpeg).startswith("data:image/jpeg;base64,/9j/")
    with pytest.raises(VideoGenError, match="not a PNG or JPEG"):
        image_data_uri(text)
