"""Synthetic media: every recipe shape, the broken files, the demo library and the music bed.

Each clip is generated once per session and judged by ffprobe (through `probe_clip`), by
ffmpeg's own decoder, or by the EBU R128 meter, never by what synth.py meant to write.
"""

from __future__ import annotations

import array
import dataclasses
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from fractions import Fraction
from pathlib import Path

import pytest

from shorts_pipeline.render.errors import ProbeError, RenderError
from shorts_pipeline.render.loudness import measure_loudness
from shorts_pipeline.render.probe import MediaInfo, ffmpeg_binary, probe_clip, probe_json
from shorts_pipeline.render.synth import (
    CLIP_LUFS,
    DEMO_LIBRARY,
    DEMO_REFERENCE_DATE,
    MUSIC_LUFS,
    TEST_RECIPES,
    ClipRecipe,
    DemoClip,
    make_audio_only,
    make_clip,
    make_demo_library,
    make_empty_file,
    make_music_bed,
    make_png_as_mp4,
    make_random_bytes,
    make_text_as_mp4,
    make_truncated_mp4,
)

# --- every recipe shape --------------------------------------------------------------------


@pytest.fixture(scope="session")
def test_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every TEST_RECIPE rendered once, two at a time (x264 alone does not fill two cores)."""
    root = tmp_path_factory.mktemp("synth-clips")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            name: pool.submit(make_clip, root / f"{name}.{recipe.container}", recipe)
            for name, recipe in TEST_RECIPES.items()
        }
        return {name: future.result() for name, future in futures.items()}


def _probe(name: str, path: Path) -> MediaInfo:
    recipe = TEST_RECIPES[name]
    # The 0.8 s clip is below probe_clip's default minimum on purpose; check it separately.
    return probe_clip(path, min_seconds=0.5) if recipe.seconds < 1 else probe_clip(path)


@pytest.mark.parametrize("name", sorted(TEST_RECIPES))
def test_recipe_probes_as_written(name: str, test_clips: dict[str, Path]) -> None:
    recipe = TEST_RECIPES[name]
    info = _probe(name, test_clips[name])

    assert (info.width, info.height) == (recipe.width, recipe.height)
    assert info.rotation == recipe.rotation
    assert info.sar == Fraction(recipe.sar.replace(":", "/"))
    assert (info.display_width, info.display_height) == recipe.display_size
    assert info.video_codec == recipe.vcodec
    assert info.pix_fmt == recipe.pix_fmt
    assert info.duration == pytest.approx(recipe.seconds, abs=0.1)
    if recipe.vfr:
        assert info.variable_frame_rate
        assert info.fps < recipe.fps * 0.9  # about half the frames were dropped
    else:
        assert not info.variable_frame_rate
        assert info.fps == pytest.approx(recipe.fps, abs=0.01)
    if recipe.audio == "none":
        assert not info.has_audio
    else:
        assert info.has_audio
        assert info.audio_codec == ("opus" if recipe.container == "webm" else "aac")
        assert info.audio_rate == recipe.audio_rate
        assert info.audio_channels == {"mono": 1, "stereo": 2, "5.1": 6}[recipe.audio]


def test_display_shapes_cover_every_orientation(test_clips: dict[str, Path]) -> None:
    shapes = {name: _probe(name, path).orientation for name, path in test_clips.items()}
    assert shapes["landscape_h264"] == "landscape"
    assert shapes["portrait"] == "portrait"
    assert shapes["square"] == "square"
    assert shapes["rotated_phone"] == "portrait"  # coded 320x180, shown 180x320
    assert shapes["anamorphic"] == "landscape"  # coded 360x270 (4:3), shown 480x270 (16:9)


def test_clip_shorter_than_a_second_is_rejected_as_too_short(
    test_clips: dict[str, Path],
) -> None:
    with pytest.raises(ProbeError, match="too short"):
        probe_clip(test_clips["short_0_8s"])


def test_rotated_clip_displays_upright(test_clips: dict[str, Path], tmp_path: Path) -> None:
    """Decoded with autorotation, the phone clip equals the same scene rendered upright."""
    phone = TEST_RECIPES["rotated_phone"]
    upright = make_clip(
        tmp_path / "upright.mp4",
        dataclasses.replace(phone, width=phone.height, height=phone.width, rotation=0),
    )
    shown = _grey_frame(test_clips["rotated_phone"], at=1.0)
    expected = _grey_frame(upright, at=1.0)
    assert len(shown) == len(expected)
    mean_error = sum(abs(a - b) for a, b in zip(shown, expected, strict=True)) / len(shown)
    assert mean_error < 8  # the same picture up to encoding noise (a turned one differs by ~60)


def test_clip_audio_is_near_clip_lufs(test_clips: dict[str, Path]) -> None:
    for name in ("landscape_h264", "mono_8k", "vp9_webm_opus"):
        loudness = measure_loudness(test_clips[name])
        assert loudness.integrated_lufs == pytest.approx(CLIP_LUFS, abs=1.5), name


def test_clips_with_different_seeds_sound_different(test_clips: dict[str, Path]) -> None:
    a = _pcm(test_clips["landscape_h264"], channels=1)
    b = _pcm(test_clips["hfr_60"], channels=1)
    assert a[:48000] != b[:48000]


# --- recipes and failures ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"width": 321}, "even"),
        ({"container": "webm"}, "webm holds vp9"),
        ({"rotation": 45}, "rotation"),
        ({"rotation": 90, "container": "mkv"}, "mp4 or mov"),
        ({"audio": "7.1"}, "audio"),
        ({"sar": "wide"}, "sar"),
        ({"pattern": "fireworks"}, "pattern"),
    ],
)
def test_recipe_rejects_shapes_it_cannot_make(changes: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ClipRecipe(**{"width": 320, "height": 180, "seconds": 2.0, **changes})


def test_failed_render_raises_render_error_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out" / "broken.mp4"
    with pytest.raises(RenderError, match=r"synthesising broken\.mp4 failed") as caught:
        make_clip(target, ClipRecipe(64, 64, 1.0, pix_fmt="no_such_format"))
    assert "no_such_format" in caught.value.log_tail  # ffmpeg's own words
    assert list(target.parent.iterdir()) == []  # neither the clip nor a temp file


# --- broken inputs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maker", "reason"),
    [
        (lambda p, src: make_empty_file(p / "empty.mp4"), "empty"),
        (lambda p, src: make_text_as_mp4(p / "error-page.mp4"), "not a readable media file"),
        (lambda p, src: make_random_bytes(p / "noise.mp4", 65536), "not a readable media file"),
        (lambda p, src: make_truncated_mp4(src, p / "half.mp4"), "not a readable media file"),
        (lambda p, src: make_png_as_mp4(p / "still.mp4"), "an image"),
        (lambda p, src: make_audio_only(p / "song.m4a", 2.0), "audio-only"),
        (lambda p, src: make_audio_only(p / "song.mp4", 2.0), "audio-only"),
    ],
    ids=["empty", "text", "random", "truncated", "png", "audio-m4a", "audio-mp4"],
)
def test_broken_input_is_rejected_with_its_reason(
    maker, reason: str, test_clips: dict[str, Path], tmp_path: Path
) -> None:
    path = maker(tmp_path, test_clips["landscape_h264"])
    assert path.exists()
    with pytest.raises(ProbeError) as caught:
        probe_clip(path)
    assert reason in caught.value.reason


@pytest.mark.parametrize("name", ["vp9_webm_opus", "landscape_h264_faststart"])
def test_truncated_file_with_index_up_front_is_rejected(
    name: str, test_clips: dict[str, Path], tmp_path: Path
) -> None:
    if name == "landscape_h264_faststart":
        src = tmp_path / "faststart.mp4"
        cmd = [ffmpeg_binary(), "-nostdin", "-v", "error", "-i", str(test_clips["landscape_h264"])]
        cmd += ["-c", "copy", "-movflags", "+faststart", str(src)]
        subprocess.run(cmd, check=True, timeout=60)
    else:
        src = test_clips[name]
    half = make_truncated_mp4(src, tmp_path / f"half{src.suffix}")
    with pytest.raises(ProbeError, match="truncated"):
        probe_clip(half)


# --- the demo library ----------------------------------------------------------------------


def test_demo_library_metadata_fits_the_demos() -> None:
    def matches(clip: DemoClip, words: set[str]) -> bool:
        text = (clip.title + " " + " ".join(clip.tags)).lower()
        return any(word in text for word in words)

    ids = [c.id for c in DEMO_LIBRARY]
    assert len(set(ids)) == len(ids) >= 10
    assert all(c.id.replace("-", "").isalnum() and c.id == c.id.lower() for c in DEMO_LIBRARY)
    assert sum(matches(c, {"football", "skill"}) for c in DEMO_LIBRARY) >= 7
    assert sum(not matches(c, {"football", "skill"}) for c in DEMO_LIBRARY) >= 2
    for clip in DEMO_LIBRARY:
        age = DEMO_REFERENCE_DATE - date.fromisoformat(clip.published)
        assert 0 <= age.days <= 730, clip.id
        assert 0 < clip.likes < clip.views
        assert 6 <= clip.recipe.seconds <= 20
    recipes = [c.recipe for c in DEMO_LIBRARY]
    shapes = {(r.width, r.height, r.fps) for r in recipes}
    assert {(1920, 1080, 30), (1080, 1920, 30), (1080, 1080, 30), (640, 480, 25)} <= shapes
    assert (1280, 720, 60) in shapes
    assert any(r.width == 3840 and r.vcodec == "hevc" and r.seconds >= 6 for r in recipes)
    assert any(r.rotation == 90 and (r.width, r.height) == (1920, 1080) for r in recipes)
    assert any(r.sar == "4:3" for r in recipes)
    assert any(r.audio == "none" for r in recipes)
    assert any(r.vfr for r in recipes)


def _small(clip: DemoClip) -> DemoClip:
    """The same clip shrunk (a sixth of the size, 1.5 s): the full library takes ~25 s."""
    r = clip.recipe
    w, h = max(32, r.width // 12 * 2), max(32, r.height // 12 * 2)
    return dataclasses.replace(clip, recipe=dataclasses.replace(r, width=w, height=h, seconds=1.5))


SMALL_DEMO = tuple(_small(c) for c in DEMO_LIBRARY)


@pytest.fixture(scope="session")
def demo_library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    fractions: list[float] = []
    catalog = make_demo_library(
        tmp_path_factory.mktemp("demo"), SMALL_DEMO, progress=fractions.append
    )
    return catalog, fractions


def test_demo_library_writes_a_catalog_of_clips_that_probe(
    demo_library: tuple[Path, list[float]],
) -> None:
    catalog, fractions = demo_library
    entries = json.loads(catalog.read_text(encoding="utf-8"))
    assert [e["id"] for e in entries] == [c.id for c in SMALL_DEMO]
    for entry, clip in zip(entries, SMALL_DEMO, strict=True):
        assert set(entry) == {"id", "file", "title", "views", "likes", "published", "tags"}
        assert entry["title"] == clip.title and entry["tags"] == list(clip.tags)
        info = probe_clip(catalog.parent / entry["file"])
        assert (info.display_width, info.display_height) == clip.recipe.display_size
        assert info.has_audio == (clip.recipe.audio != "none")
    assert sorted(p.name for p in catalog.parent.iterdir()) == sorted(
        [c.file for c in SMALL_DEMO] + ["catalog.json"]
    )  # no temp files left behind
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_demo_library_rerun_regenerates_nothing(demo_library: tuple[Path, list[float]]) -> None:
    catalog, _ = demo_library
    before = {p.name: p.stat().st_mtime_ns for p in catalog.parent.iterdir()}
    start = time.perf_counter()
    assert make_demo_library(catalog.parent, SMALL_DEMO) == catalog
    assert time.perf_counter() - start < 5  # ten ffprobe calls, no rendering
    assert {p.name: p.stat().st_mtime_ns for p in catalog.parent.iterdir()} == before


def test_demo_library_rerenders_only_a_changed_recipe(tmp_path: Path) -> None:
    clips = SMALL_DEMO[:2]
    make_demo_library(tmp_path, clips)
    before = {c.file: (tmp_path / c.file).stat().st_mtime_ns for c in clips}
    changed = dataclasses.replace(clips[1], recipe=dataclasses.replace(clips[1].recipe, seed=99))
    make_demo_library(tmp_path, (clips[0], changed))
    assert (tmp_path / clips[0].file).stat().st_mtime_ns == before[clips[0].file]
    assert (tmp_path / clips[1].file).stat().st_mtime_ns != before[clips[1].file]


# --- the music bed -------------------------------------------------------------------------


def test_music_bed_is_stereo_48k_aac_at_music_lufs(tmp_path: Path) -> None:
    bed = make_music_bed(tmp_path / "bed.m4a", seconds=30)
    with pytest.raises(ProbeError, match="audio-only"):
        probe_clip(bed)
    stream = _audio_stream(bed)
    assert stream["codec_name"] == "aac"
    assert int(stream["sample_rate"]) == 48000 and int(stream["channels"]) == 2
    assert float(stream["duration"]) == pytest.approx(30, abs=0.1)
    loudness = measure_loudness(bed)
    assert loudness.integrated_lufs == pytest.approx(MUSIC_LUFS, abs=1.5)
    assert loudness.true_peak_dbtp < -1.0
    # Short fades at both ends: it starts and stops silent, so it loops without a click.
    pcm = _pcm(bed, channels=2)
    edge = 2 * 48 * 2  # 2 ms of stereo samples
    assert max(abs(s) for s in pcm[:edge]) < 0.02 * 32768
    assert max(abs(s) for s in pcm[-edge:]) < 0.02 * 32768


def test_music_bed_is_deterministic(tmp_path: Path) -> None:
    a = make_music_bed(tmp_path / "a.m4a", seconds=4)
    b = make_music_bed(tmp_path / "b.m4a", seconds=4)
    assert _pcm(a, channels=2) == _pcm(b, channels=2)


# --- helpers -------------------------------------------------------------------------------


def _grey_frame(path: Path, at: float) -> bytes:
    """One frame as ffmpeg shows it (autorotated, square pixels), 36x64 grey."""
    cmd = [ffmpeg_binary(), "-nostdin", "-v", "error", "-ss", str(at), "-i", str(path)]
    cmd += ["-frames:v", "1", "-vf", "scale=36:64,format=gray", "-f", "rawvideo", "-"]
    return subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout


def _pcm(path: Path, channels: int) -> array.array:
    """The decoded audio as signed 16-bit samples at 48 kHz."""
    cmd = [ffmpeg_binary(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0"]
    cmd += ["-ac", str(channels), "-ar", "48000", "-f", "s16le", "-"]
    samples = array.array("h")
    samples.frombytes(subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout)
    return samples


def _audio_stream(path: Path) -> dict:
    return next(s for s in probe_json(path)["streams"] if s["codec_type"] == "audio")
