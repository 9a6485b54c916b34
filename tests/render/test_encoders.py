"""The video encoder setting: libx264 by default, NVENC when asked and present, and a render
that falls back to libx264 (and says so) when NVENC cannot be opened."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from shorts_pipeline.render.encoders import (
    ENCODER_ENV,
    EncoderSettings,
    encoder_from_env,
    is_nvenc_failure,
    nvenc_available,
)
from shorts_pipeline.render.inspect import inspect_video
from shorts_pipeline.render.timeline import FilterGraph, StillSegment, Timeline, render_timeline


def test_libx264_is_the_default_and_unknown_encoders_are_refused():
    assert encoder_from_env({}).video_codec == "libx264"
    assert encoder_from_env({ENCODER_ENV: " LIBX264 "}).video_codec == "libx264"
    assert encoder_from_env({ENCODER_ENV: "h264_nvenc"}).video_codec == "h264_nvenc"
    with pytest.raises(ValueError, match=r"SHORTS_VIDEO_ENCODER='x265'.*libx264, h264_nvenc, auto"):
        encoder_from_env({ENCODER_ENV: "x265"})


def test_auto_uses_nvenc_only_where_a_test_encode_succeeds():
    # The probe is a real ffmpeg encode: on a machine without an NVIDIA driver it fails.
    expected = "h264_nvenc" if nvenc_available() else "libx264"
    assert encoder_from_env({ENCODER_ENV: "auto"}).video_codec == expected


def test_nvenc_arguments_are_options_this_ffmpeg_knows():
    help_text = subprocess.run(
        ["ffmpeg", "-hide_banner", "-h", "encoder=h264_nvenc"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "h264_nvenc" not in help_text:
        pytest.fail("this ffmpeg has no h264_nvenc encoder; Debian's ffmpeg package has it")
    known = set(re.findall(r"^\s+-([\w-]+)\s", help_text, flags=re.MULTILINE))
    args = EncoderSettings(video_codec="h264_nvenc").video_args(30)
    encoder_options = [a[1:] for a in args if a.startswith("-")]
    # Options after the codec up to the generic ones belong to the encoder.
    generic = {"c:v", "profile:v", "pix_fmt", "r", "g", "b:v"}
    assert set(encoder_options) - generic <= known, set(encoder_options) - generic - known
    assert re.search(r"^\s+p4\s", help_text, flags=re.MULTILINE)  # the preset value exists
    assert args[args.index("-cq") + 1] == "23"  # the same quality number as libx264's CRF


def test_both_encoders_share_container_profile_gop_and_colour_tags(tmp_path: Path):
    card = tmp_path / "card.png"
    Image.new("RGB", (1080, 1920), (30, 60, 90)).save(card)
    x264 = Timeline(segments=[StillSegment(str(card), 1.0)], encoder=EncoderSettings())
    nvenc = Timeline(
        segments=[StillSegment(str(card), 1.0)],
        encoder=EncoderSettings(video_codec="h264_nvenc"),
    )
    a, b = FilterGraph(x264).encode_args(), FilterGraph(nvenc).encode_args()
    assert a[a.index("-c:v") + 1] == "libx264" and b[b.index("-c:v") + 1] == "h264_nvenc"
    for option in ("-profile:v", "-pix_fmt", "-g", "-colorspace", "-movflags", "-t"):
        assert a[a.index(option) + 1] == b[b.index(option) + 1], option


def test_nvenc_failures_are_recognised_and_input_failures_are_not():
    assert is_nvenc_failure("[h264_nvenc @ 0x1] Cannot load libcuda.so.1")
    assert is_nvenc_failure("OpenEncodeSessionEx failed: out of memory (10)")
    assert not is_nvenc_failure("clip.mp4: Invalid data found when processing input")


def test_a_render_asked_for_nvenc_is_made_on_this_machine_either_way(tmp_path: Path, monkeypatch):
    card = tmp_path / "card.png"
    Image.new("RGB", (1080, 1920), (200, 120, 40)).save(card)
    monkeypatch.setenv(ENCODER_ENV, "h264_nvenc")
    timeline = Timeline(segments=[StillSegment(str(card), 1.0)])  # the encoder from the env
    assert timeline.encoder.video_codec == "h264_nvenc"
    result = render_timeline(timeline, tmp_path / "out.mp4")
    facts = inspect_video(result.path)
    assert (facts.width, facts.height, facts.video_codec) == (1080, 1920, "h264")
    assert abs(facts.duration - 1.0) < 0.1
    if nvenc_available():
        assert result.encoder == "h264_nvenc" and result.notes == ()
    else:
        assert result.encoder == "libx264"
        assert len(result.notes) == 1
        assert result.notes[0].startswith("h264_nvenc failed (")
        assert "rendered with libx264 instead" in result.notes[0]
    assert not list(tmp_path.glob(".*partial*"))  # nothing half-written left behind
