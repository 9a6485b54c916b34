"""The render engine on real clips of every shape, judged by ffprobe and by pixels."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image

from shorts_pipeline.render.continuity import frame_differences
from shorts_pipeline.render.errors import RenderError
from shorts_pipeline.render.geometry import Overlay
from shorts_pipeline.render.inspect import inspect_video
from shorts_pipeline.render.probe import probe_clip
from shorts_pipeline.render.synth import ClipRecipe, make_clip, make_music_bed
from shorts_pipeline.render.timeline import ClipSegment, StillSegment, Timeline, render_timeline
from tests.helpers import frame_at

pytestmark = pytest.mark.slow

SHAPES = {
    "landscape": ClipRecipe(width=1280, height=720, seconds=3, fps=30, audio="stereo", seed=11),
    "portrait_25fps_no_audio": ClipRecipe(
        width=540, height=960, seconds=3, fps=25, audio="none", seed=12
    ),
    "rotated_phone": ClipRecipe(
        width=640, height=360, seconds=3, fps=30, audio="stereo", rotation=90, seed=13
    ),
    "anamorphic": ClipRecipe(
        width=720, height=576, seconds=3, fps=25, audio="mono", sar="16:11", seed=14
    ),
    "vfr": ClipRecipe(width=640, height=360, seconds=3, fps=30, audio="stereo", vfr=True, seed=15),
    "hevc_10bit_4k": ClipRecipe(
        width=3840,
        height=2160,
        seconds=2,
        fps=30,
        vcodec="hevc",
        pix_fmt="yuv420p10le",
        audio="5.1",
        seed=16,
    ),
    "hfr_60": ClipRecipe(
        width=640, height=640, seconds=3, fps=60, audio="mono", audio_rate=8000, seed=17
    ),
}


def solid_png(path: Path, size: tuple[int, int], colour: tuple[int, int, int, int]) -> Path:
    Image.new("RGBA", size, colour).save(path)
    return path


def halves_clip(path: Path, rotation: int) -> Path:
    """A clip coded 640x360: left half red, right half blue, with rotation metadata."""
    tmp = path.with_name("plain-" + path.name)
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=red:s=320x360:d=2:r=30",
            "-f",
            "lavfi",
            "-i",
            "color=blue:s=320x360:d=2:r=30",
            "-filter_complex",
            "hstack",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            str(tmp),
        ],
        check=True,
    )
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-i",
            str(tmp),
            "-c",
            "copy",
            "-metadata:s:v:0",
            f"rotate={rotation}",
            str(path),
        ],
        check=True,
    )
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    clips = {
        name: probe_clip(make_clip(root / f"{name}.mp4", recipe)) for name, recipe in SHAPES.items()
    }
    card = solid_png(root / "card.png", (1080, 1920), (20, 30, 90, 255))
    badge = solid_png(root / "badge.png", (200, 120), (255, 0, 255, 255))
    music = make_music_bed(root / "bed.m4a", seconds=20)
    return {"root": root, "clips": clips, "card": card, "badge": badge, "music": music}


@pytest.fixture(scope="module")
def mixed_render(media):
    """Every shape in one cover-fitted render, each with a magenta badge, music under it."""
    badge = Overlay(str(media["badge"]), x=100, y=300, width=200, height=120)
    segments = [StillSegment(str(media["card"]), 1.0)]
    segments += [ClipSegment(info, 0.2, 1.2, (badge,)) for info in media["clips"].values()]
    timeline = Timeline(
        segments=segments, transition="fade", transition_seconds=0.3, music=str(media["music"])
    )
    fractions: list[float] = []
    out = media["root"] / "mixed.mp4"
    result = render_timeline(
        timeline, out, thumbnail_path=media["root"] / "thumb.jpg", progress=fractions.append
    )
    return timeline, result, fractions


def test_output_is_a_conforming_vertical_video(mixed_render):
    timeline, result, _ = mixed_render
    facts = inspect_video(result.path)
    assert (facts.width, facts.height, facts.sar) == (1080, 1920, "1:1")
    assert facts.fps == 30
    assert facts.duration == pytest.approx(timeline.duration, abs=0.07)
    assert (facts.video_codec, facts.profile, facts.pix_fmt) == ("h264", "High", "yuv420p")
    assert facts.color_primaries == "bt709"
    assert (facts.audio_codec, facts.audio_rate, facts.audio_channels) == ("aac", 48000, 2)
    assert facts.faststart
    assert facts.loudness is not None
    assert facts.loudness.integrated_lufs == pytest.approx(-14.0, abs=1.0)
    assert facts.loudness.true_peak_dbtp <= -0.9


def test_every_frame_is_present_at_constant_rate(mixed_render):
    timeline, result, _ = mixed_render
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            result.path,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(probe.stdout.strip()) == pytest.approx(timeline.duration * 30, abs=2)


def test_badge_is_drawn_where_placed(mixed_render, tmp_path):
    timeline, result, _ = mixed_render
    starts = timeline.segment_starts()
    for index in (1, 4, 6):  # landscape, anamorphic, 4K HEVC
        img = frame_at(Path(result.path), starts[index] + 0.6, tmp_path / f"f{index}.png")
        r, g, b = img.getpixel((200, 360))
        assert r > 200 and g < 60 and b > 200, f"segment {index}: badge missing ({r},{g},{b})"
        outside = img.getpixel((200, 700))
        assert not (outside[0] > 200 and outside[1] < 60 and outside[2] > 200)


def test_thumbnail_and_progress(mixed_render):
    _, result, fractions = mixed_render
    with Image.open(result.thumbnail) as thumb:
        assert thumb.size == (1080, 1920) and thumb.format == "JPEG"
    assert fractions and fractions[-1] == 1.0
    assert fractions == sorted(fractions)


@pytest.mark.parametrize("rotation", [90, 270])
def test_rotated_phone_clip_is_upright(tmp_path, rotation):
    """Coded landscape red|blue with rotation: shown portrait, so colours split top/bottom."""
    info = probe_clip(halves_clip(tmp_path / "phone.mp4", rotation))
    assert (info.display_width, info.display_height) == (360, 640)
    timeline = Timeline(segments=[ClipSegment(info, 0, 1.0)], music=None)
    out = render_timeline(timeline, tmp_path / "out.mp4").path
    img = frame_at(Path(out), 0.5, tmp_path / "f.png")
    top, bottom = img.getpixel((540, 300)), img.getpixel((540, 1600))
    left, right = img.getpixel((100, 960)), img.getpixel((980, 960))
    assert left == pytest.approx(right, abs=30), "colours must not split left/right"
    assert {_dominant(top), _dominant(bottom)} == {"red", "blue"}


def test_contain_keeps_whole_picture_over_blurred_fill(media, tmp_path):
    info = media["clips"]["landscape"]
    timeline = Timeline(segments=[ClipSegment(info, 0, 1.0)], fit="contain", music=None)
    out = render_timeline(timeline, tmp_path / "contain.mp4").path
    img = frame_at(Path(out), 0.5, tmp_path / "c.png")
    # 1280x720 fitted to width 1080 -> 1080x608 band centred at y 656..1264
    band = img.crop((0, 700, 1080, 1220))
    fill = img.crop((0, 100, 1080, 500))
    assert _variance(band) > _variance(fill) * 2, "the fill must be blurred, the band sharp"
    assert max(fill.convert("L").getextrema()) > 10, "the fill must not be black bars"


@pytest.mark.parametrize("transition", ["none", "slide", "wipe"])
def test_transitions_keep_planned_duration(media, tmp_path, transition):
    clips = media["clips"]
    timeline = Timeline(
        segments=[
            ClipSegment(clips["landscape"], 0, 1.0),
            ClipSegment(clips["vfr"], 0, 1.0),
            StillSegment(str(media["card"]), 0.8),
        ],
        transition=transition,
        transition_seconds=0.3,
        music=None,
    )
    out = render_timeline(timeline, tmp_path / f"{transition}.mp4").path
    facts = inspect_video(out, measure_audio=False)
    expected = 2.8 if transition == "none" else 2.8 - 2 * 0.3
    assert facts.duration == pytest.approx(expected, abs=0.07)


def test_silent_sources_get_music_or_silence(media, tmp_path):
    info = media["clips"]["portrait_25fps_no_audio"]
    with_music = render_timeline(
        Timeline(segments=[ClipSegment(info, 0, 1.5)], music=str(media["music"])),
        tmp_path / "m.mp4",
    )
    facts = inspect_video(with_music.path)
    assert facts.has_audio and facts.loudness.integrated_lufs == pytest.approx(-14, abs=1)
    silent = render_timeline(
        Timeline(segments=[ClipSegment(info, 0, 1.0)], music=None), tmp_path / "s.mp4"
    )
    assert inspect_video(silent.path, measure_audio=False).has_audio


def test_failed_render_leaves_nothing_and_says_why(media, tmp_path):
    info = media["clips"]["landscape"]
    broken = Overlay(str(tmp_path / "missing-badge.png"), 0, 300, 10, 10)
    out = tmp_path / "out" / "video.mp4"
    with pytest.raises(RenderError, match=r"missing-badge\.png"):
        render_timeline(Timeline(segments=[ClipSegment(info, 0, 1.0, (broken,))], music=None), out)
    assert list(out.parent.iterdir()) == []


def _dominant(rgb: tuple[int, int, int]) -> str:
    r, _, b = rgb
    return "red" if r > b else "blue"


def _variance(img: Image.Image) -> float:
    from PIL import ImageFilter, ImageStat

    edges = img.convert("L").filter(ImageFilter.FIND_EDGES)
    return ImageStat.Stat(edges).var[0]


def test_music_dips_under_the_voice_by_duck_db(tmp_path):
    """The bed is ducked exactly where a voice cue is heard, by about duck_db: the same
    music rendered with and without a voice, compared window by window (the whole mix's
    normalising gain differs between the two, so levels are relative to a window before)."""
    import numpy as np

    from shorts_pipeline.render.cards import draw_title_card
    from shorts_pipeline.render.probe import ffmpeg_binary
    from shorts_pipeline.render.timeline import VoiceCue

    card = draw_title_card(tmp_path / "card.png", "Ducking")
    music = make_music_bed(tmp_path / "bed.m4a", seconds=10)
    voice = tmp_path / "voice.wav"  # a 3 kHz tone stands in for speech: above the music's band
    subprocess.run(
        [
            ffmpeg_binary(),
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=f=3000:d=1.5:r=48000",
            "-ac",
            "1",
            str(voice),
        ],
        check=True,
    )

    def render(cues: list[VoiceCue], name: str) -> tuple[Path, np.ndarray]:
        timeline = Timeline(
            segments=[StillSegment(card, 8.0)], music=str(music), music_db=0.0, voice=cues
        )
        out = tmp_path / name
        render_timeline(timeline, out)
        pcm = subprocess.run(
            [
                ffmpeg_binary(),
                "-v",
                "error",
                "-i",
                str(out),
                "-map",
                "0:a",
                "-ac",
                "1",
                "-ar",
                "48000",
                "-f",
                "f32le",
                "-",
            ],
            check=True,
            capture_output=True,
        ).stdout
        return out, np.frombuffer(pcm, dtype=np.float32)

    def band_db(samples: np.ndarray, start: float, end: float, low: float, high: float) -> float:
        chunk = samples[int(start * 48000) : int(end * 48000)]
        spectrum = np.abs(np.fft.rfft(chunk * np.hanning(len(chunk)))) ** 2
        freqs = np.fft.rfftfreq(len(chunk), 1 / 48000)
        return float(10 * np.log10(spectrum[(freqs >= low) & (freqs < high)].sum() + 1e-20))

    out, voiced = render([VoiceCue(str(voice), 2.0, 1.5)], "voiced.mp4")
    _, plain = render([], "plain.mp4")

    def music_drop(start: float, end: float) -> float:
        """How much lower the music is with the voice than without, relative to 0.8–1.6 s."""
        without = band_db(plain, start, end, 40, 1500) - band_db(plain, 0.8, 1.6, 40, 1500)
        with_voice = band_db(voiced, start, end, 40, 1500) - band_db(voiced, 0.8, 1.6, 40, 1500)
        return without - with_voice

    assert music_drop(2.4, 3.2) == pytest.approx(12, abs=2.5)  # duck_db is -12 by default
    assert abs(music_drop(4.2, 5.0)) < 1.5  # back up once the voice stops
    # and the voice is there, well above the ducked bed
    assert band_db(voiced, 2.4, 3.2, 2900, 3100) > band_db(voiced, 2.4, 3.2, 40, 1500)
    assert inspect_video(out).loudness.integrated_lufs == pytest.approx(-14, abs=1)


def test_crossfades_show_every_frame_once(tmp_path: Path) -> None:
    """Regression: xfade's frames carry no duration, so the piece after each cross-fade
    started on the fade's last timestamp and the encoder showed one frame twice (a stall at
    every transition, in every format). Two moving patterns, one of them negated, let each
    output frame be traced to its sources."""
    clips = []
    for n, extra in enumerate(("", ",negate")):
        path = tmp_path / f"c{n}.mp4"
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=s=270x480:r=30:d=2{extra}",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-crf",
                "12",
                str(path),
            ],
            check=True,
        )
        clips.append(probe_clip(path))
    timeline = Timeline(
        segments=[ClipSegment(clips[0], 0.0, 1.5), ClipSegment(clips[1], 0.0, 1.5)],
        transition="fade",
        transition_seconds=0.2,
        width=270,
        height=480,
    )
    out = render_timeline(timeline, tmp_path / "out.mp4").path
    diffs = frame_differences(out)
    assert len(diffs) == round(timeline.duration * 30) - 1
    assert diffs.min() > 0.5, f"frame {int(diffs.argmin())} repeats"
