"""The quality gates: each check passes on a good file and fails on one broken in its way.

The videos are small (270x480, 4 s) and real: made by ffmpeg, read back by `inspect_video`
with its one scan pass, judged by `video_checks` against a plan. The last test runs the real
graph on a clip that is black, and shows the blocking check stopping `upload`.
"""

from __future__ import annotations

import functools
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from shorts_pipeline.assets.narration import VOICE_LEAD, narration_fit_check
from shorts_pipeline.assets.script import speech_length_check
from shorts_pipeline.assets.selection import decodable_check
from shorts_pipeline.assets.video import CHECKS, VideoPlan, video_checks, video_plan
from shorts_pipeline.models import (
    ProjectFormat,
    ProjectSpec,
    ProjectStatus,
    SceneAudio,
    SkippedClip,
)
from shorts_pipeline.render.cards import draw_rank_badge
from shorts_pipeline.render.ffmpeg_run import run_ffmpeg
from shorts_pipeline.render.inspect import Stretch, VideoFacts, inspect_video, subtitle_boxes
from shorts_pipeline.render.loudness import EBUR128_FILTER, parse_ebur128_summary
from shorts_pipeline.render.probe import probe_clip
from shorts_pipeline.render.subtitles import SpokenScene, build_cues, write_ass
from shorts_pipeline.render.timeline import ClipSegment, StillSegment, Timeline, VoiceCue
from shorts_pipeline.resources.catalog import CatalogResource
from tests.helpers import fast_settings, materialize_project, project_resources

SIZE = (270, 480)
SECONDS = 4.0
TONE = "0.1*sin(2*PI*440*t)"
# Planned like the test videos: 4 s, narrated from 0.5 s to 3.5 s.
PLAN = VideoPlan(size=SIZE, max_duration=60.0, duration=SECONDS, voice=Stretch(0.5, 3.5))
BLOCKING = {spec.name for spec in CHECKS if spec.blocking}


# --- making the videos -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sound:
    """A stereo signal `expr` (of t) for `seconds`, played at `lufs` integrated loudness."""

    expr: str = TONE
    seconds: float = SECONDS
    lufs: float = -14.0

    def source(self) -> str:
        return f"aevalsrc=exprs='{self.expr}|{self.expr}':s=48000:d={self.seconds}"

    def gain_db(self) -> float:
        return self.lufs - _level(self.expr)


@functools.cache
def _level(expr: str) -> float:
    """Integrated loudness of `expr` as it comes (steady signals: any length gives the same)."""
    log = run_ffmpeg(
        ["-f", "lavfi", "-i", Sound(expr, 2.0).source(), "-af", EBUR128_FILTER, "-f", "null", "-"],
        what="loudness of a test signal",
    )
    return parse_ebur128_summary(log).integrated_lufs


def encode(
    out: Path,
    audio: Sound | None = Sound(),
    *,
    video: str = "null",
    sound: str = "anull",
    seconds: float = SECONDS,
    size: tuple[int, int] = SIZE,
    fps: int = 30,
    codec: tuple[str, ...] = ("-profile:v", "high", "-pix_fmt", "yuv420p"),
    faststart: bool = True,
    extra: tuple[str, ...] = (),
) -> Path:
    """testsrc2 (moving every frame) through the `video` filters, `audio` through `sound`,
    as H.264/AAC 48 kHz stereo in MP4 — High profile, yuv420p and +faststart unless told."""
    source = f"testsrc2=s={size[0]}x{size[1]}:r={fps}:d={seconds}"
    args: list[str | Path] = ["-f", "lavfi", "-i", source]
    graph = f"[0:v]{video}[v]"
    maps = ["-map", "[v]"]
    if audio is not None:
        args += ["-f", "lavfi", "-i", audio.source()]
        graph += f";[1:a]volume={audio.gain_db():.2f}dB,{sound}[a]"
        maps += ["-map", "[a]"]
    args += ["-filter_complex", graph, *maps, "-c:v", "libx264", "-preset", "veryfast", *codec]
    if audio is not None:
        args += ["-c:a", "aac", "-ar", "48000"]
    if faststart:
        args += ["-movflags", "+faststart"]
    ffmpeg(*args, *extra, out)
    return out


def ffmpeg(*args: str | Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


def frozen_at(start: float, seconds: float, fps: int = 30) -> str:
    """Filters that hold the frame at `start` for `seconds`, then play on."""
    n = round(start * fps) + 1
    return (
        f"split[a][b];[a]trim=end_frame={n},tpad=stop_mode=clone:stop_duration={seconds}[a1];"
        f"[b]trim=start_frame={n},setpts=PTS-STARTPTS[b1];[a1][b1]concat=n=2:v=1:a=0"
    )


def judge(facts: VideoFacts, plan: VideoPlan = PLAN) -> dict[str, dg.AssetCheckResult]:
    return {r.check_name or "": r for r in video_checks(facts, plan)}


def failed(facts: VideoFacts, plan: VideoPlan = PLAN) -> set[str]:
    return {name for name, r in judge(facts, plan).items() if not r.passed}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("quality")


@pytest.fixture(scope="module")
def good(media: Path) -> VideoFacts:
    return inspect_video(encode(media / "good.mp4"), scan=True)


# --- the good file -----------------------------------------------------------------------------


def test_a_good_video_passes_every_check_with_its_measured_values(good: VideoFacts):
    results = judge(good)
    assert list(results) == [spec.name for spec in CHECKS]
    assert all(r.passed for r in results.values()), {
        n: r.metadata for n, r in results.items() if not r.passed
    }
    # Severity follows the spec: blocking checks fail the step, the others warn.
    for name, result in results.items():
        expected = dg.AssetCheckSeverity.ERROR if name in BLOCKING else dg.AssetCheckSeverity.WARN
        assert result.severity is expected
    assert results["loudness_minus_14_lufs"].metadata["integrated_lufs"].value == pytest.approx(
        -14, abs=0.5
    )
    assert results["true_peak_below_minus_1_dbtp"].metadata["true_peak_dbtp"].value < -1
    assert abs(results["audio_video_durations_match"].metadata["mismatch_ms"].value) <= 50
    assert results["no_black_segments"].metadata["black_segments"].value == "none"
    assert good.scan is not None and good.scan.seconds < 5


# --- picture -----------------------------------------------------------------------------------


def test_resolution_fails_on_the_wrong_size_and_on_non_square_pixels(good, media):
    plan = VideoPlan(size=(1080, 1920), max_duration=60, duration=SECONDS)
    assert failed(good, plan) == {"resolution"}
    assert judge(good, plan)["resolution"].metadata["resolution"].value == "270x480"
    anamorphic = inspect_video(encode(media / "sar.mp4", video="setsar=4/3"), scan=True)
    assert anamorphic.sar == "4:3"
    result = judge(anamorphic)["resolution"]
    assert not result.passed and result.metadata["sar"].value == "4:3"


def test_frame_rate_fails_on_25_fps_and_on_a_variable_rate(media):
    pal = inspect_video(encode(media / "pal.mp4", fps=25), scan=True)
    assert failed(pal) == {"frame_rate_30"}
    # 60 fps for a second, then 15 fps for two: 90 frames in about 3 s, some 30 fps on average.
    vfr = encode(
        media / "vfr.mp4",
        fps=60,
        seconds=3.0,
        video="select='lt(n\\,60)+not(mod(n\\,4))'",
        extra=("-fps_mode", "passthrough"),
    )
    facts = inspect_video(vfr, scan=True)
    result = judge(facts)["frame_rate_30"]
    assert facts.fps == pytest.approx(30, abs=2)
    assert not result.passed
    assert result.metadata["constant"].value is False
    assert result.metadata["r_frame_rate"].value == 60


def test_h264_checks_fail_on_yuv444p_and_on_the_baseline_profile(media):
    full_chroma = inspect_video(encode(media / "444.mp4", codec=("-pix_fmt", "yuv444p")), scan=True)
    assert full_chroma.pix_fmt == "yuv444p"
    assert failed(full_chroma) == {"h264_yuv420p", "h264_high_profile"}
    baseline = inspect_video(
        encode(media / "base.mp4", codec=("-profile:v", "baseline")), scan=True
    )
    assert failed(baseline) == {"h264_high_profile"}
    assert judge(baseline)["h264_high_profile"].metadata["profile"].value.endswith("Baseline")


def test_faststart_fails_when_the_index_is_at_the_end(media):
    late = inspect_video(encode(media / "late.mp4", faststart=False), scan=True)
    assert failed(late) == {"faststart"}


def test_a_one_second_black_hole_fails(media):
    hole = encode(media / "black.mp4", video="drawbox=c=black:t=fill:enable='between(t,1.5,2.5)'")
    facts = inspect_video(hole, scan=True)
    result = judge(facts)["no_black_segments"]
    assert not result.passed
    assert result.metadata["longest_black_s"].value == pytest.approx(1.0, abs=0.1)
    # A black frame is a frozen one too: both gates close.
    assert failed(facts) == {"no_black_segments", "no_frozen_segments"}
    # Black for less than half a second is a cut, not a hole.
    blink = encode(media / "blink.mp4", video="drawbox=c=black:t=fill:enable='between(t,1.5,1.8)'")
    assert failed(inspect_video(blink, scan=True)) == set()


def test_a_two_second_freeze_fails_unless_the_timeline_shows_a_still_there(media):
    audio = Sound(seconds=SECONDS + 2)
    stuck = inspect_video(
        encode(media / "frozen.mp4", audio, video=frozen_at(1.0, 2.0), seconds=SECONDS), scan=True
    )
    assert stuck.duration == pytest.approx(6.0, abs=0.05)
    plan = VideoPlan(size=SIZE, max_duration=60, duration=6.0)
    result = judge(stuck, plan)["no_frozen_segments"]
    assert not result.passed
    assert result.metadata["longest_frozen_s"].value == pytest.approx(2.0, abs=0.1)

    # The same file rendered from a timeline whose 1–3 s are a still card: a freeze on purpose.
    card = Timeline(
        segments=[
            StillSegment("intro.png", 1.0, motion="zoom_in"),
            StillSegment("title.png", 2.0),
            StillSegment("slide.png", 3.0, motion="pan_up"),
        ],
        transition="none",
    )
    assert video_plan(card, _project()).stills == (Stretch(1.0, 3.0),)
    still_plan = VideoPlan(size=SIZE, max_duration=60, duration=6.0, stills=(Stretch(1.0, 3.0),))
    assert judge(stuck, still_plan)["no_frozen_segments"].passed
    # A card with Ken Burns motion is not a still: freezing there is a fault.
    moving = video_plan(
        Timeline(segments=[StillSegment("title.png", 6.0, motion="zoom_in")], transition="none"),
        _project(),
    )
    assert moving.stills == ()


def test_still_parts_follow_the_crossfades_and_the_held_last_frames(media, good):
    clip = probe_clip(media / "good.mp4", check_tail=False)  # 4 s
    timeline = Timeline(
        segments=[
            StillSegment("title.png", 2.0),
            StillSegment("slide.png", 3.0, motion="zoom_in"),
            # From 2.5 s of a 4 s clip for 3 s: its last frame is held for the last 1.5 s.
            ClipSegment(clip, 2.5, 3.0),
            StillSegment("outro.png", 2.0),
        ],
        transition="fade",
        transition_seconds=0.4,
        voice=(VoiceCue("a.wav", 0.3, 1.0), VoiceCue("b.wav", 2.0, 2.5)),
    )
    plan = video_plan(timeline, _project())
    # Starts 0, 1.6, 4.2, 6.8 (each segment overlaps the one before by the 0.4 s fade).
    assert [(round(s.start, 3), round(s.end, 3)) for s in plan.stills] == [
        (0.0, 2.0),
        (5.7, 7.2),
        (6.8, 8.8),
    ]
    assert plan.voice == Stretch(0.3, 4.5)
    assert plan.duration == pytest.approx(8.8)


# --- time --------------------------------------------------------------------------------------


def test_durations_fail_over_the_limit_and_off_the_plan(good):
    over = VideoPlan(size=SIZE, max_duration=3.0, duration=SECONDS)
    assert failed(good, over) == {"duration_within_limit"}
    cut = VideoPlan(size=SIZE, max_duration=60, duration=SECONDS + 0.5)
    result = judge(good, cut)["duration_matches_plan"]
    assert not result.passed and result.metadata["difference_s"].value == pytest.approx(-0.5)
    assert judge(good, VideoPlan(size=SIZE, max_duration=60, duration=SECONDS + 0.08))[
        "duration_matches_plan"
    ].passed


def test_audio_shorter_than_the_video_by_200_ms_fails(media):
    short = Sound(seconds=SECONDS - 0.2)
    facts = inspect_video(encode(media / "short-audio.mp4", short), scan=True)
    result = judge(facts)["audio_video_durations_match"]
    assert not result.passed
    assert result.metadata["mismatch_ms"].value == pytest.approx(-200, abs=25)
    assert failed(facts) == {"audio_video_durations_match"}


# --- sound -------------------------------------------------------------------------------------


def test_a_video_without_sound_fails_its_audio_checks(media):
    mute = inspect_video(encode(media / "mute.mp4", audio=None), scan=True)
    assert not mute.has_audio
    assert failed(mute) == {
        "has_audio",
        "loudness_minus_14_lufs",
        "true_peak_below_minus_1_dbtp",
        "audio_video_durations_match",
        "no_silent_gaps",
    }
    # Without narration a silent video is not judged for gaps (it fails has_audio anyway).
    quiet_plan = VideoPlan(size=SIZE, max_duration=60, duration=SECONDS)
    assert judge(mute, quiet_plan)["no_silent_gaps"].passed


def test_loudness_fails_six_lu_too_quiet(media):
    facts = inspect_video(encode(media / "quiet.mp4", Sound(lufs=-20)), scan=True)
    result = judge(facts)["loudness_minus_14_lufs"]
    assert not result.passed
    assert result.metadata["integrated_lufs"].value == pytest.approx(-20, abs=0.5)
    assert failed(facts) == {"loudness_minus_14_lufs"}


def test_true_peak_over_minus_1_dbtp_fails_at_the_right_loudness(media):
    # A quiet tone with sharp clicks: at −14 LUFS the clicks peak above 0 dBFS.
    clicks = Sound(expr=f"{TONE}+if(lt(mod(t\\,0.25)\\,0.0004)\\,0.5\\,0)")
    facts = inspect_video(encode(media / "peaks.mp4", clicks), scan=True)
    results = judge(facts)
    assert results["loudness_minus_14_lufs"].passed
    assert not results["true_peak_below_minus_1_dbtp"].passed
    assert results["true_peak_below_minus_1_dbtp"].metadata["true_peak_dbtp"].value > -1
    assert results["true_peak_below_minus_1_dbtp"].severity is dg.AssetCheckSeverity.WARN


def test_a_two_second_silent_gap_between_voice_cues_fails(media):
    gap = encode(media / "gap.mp4", sound="volume=enable='between(t,1,3)':volume=0")
    facts = inspect_video(gap, scan=True)
    result = judge(facts)["no_silent_gaps"]
    assert not result.passed
    assert result.metadata["longest_gap_s"].value == pytest.approx(2.0, abs=0.1)
    # Silence outside the narration (before the first line, after the last) is allowed…
    late_voice = VideoPlan(size=SIZE, max_duration=60, duration=SECONDS, voice=Stretch(3.0, 4.0))
    assert judge(facts, late_voice)["no_silent_gaps"].passed
    # …and a video without narration is not judged for gaps at all.
    unvoiced = VideoPlan(size=SIZE, max_duration=60, duration=SECONDS)
    assert judge(facts, unvoiced)["no_silent_gaps"].metadata["narrated"].value is False


# --- text on screen ----------------------------------------------------------------------------


def test_badges_and_subtitles_inside_the_safe_area_pass_and_outside_fail(tmp_path, good):
    frame = (1080, 1920)
    badge = draw_rank_badge(tmp_path / "badge.png", 3, "Insane rabona goal", frame)
    cues = build_cues([SpokenScene(0.0, 3.0, "Decorators wrap a function in another one")])
    ass = tmp_path / "subtitles.ass"
    write_ass(cues, ass, frame=frame)
    boxes = subtitle_boxes(ass)
    assert boxes, "the ASS file has subtitles"
    overlays = (
        ("badge-3.png", (badge.x, badge.y, badge.width, badge.height)),
        *((f"subtitle {n}", box) for n, box in enumerate(boxes, 1)),
    )
    plan = VideoPlan(size=frame, max_duration=60, duration=SECONDS, overlays=overlays)
    result = judge(good, plan)["text_inside_safe_area"]
    assert result.passed and result.metadata["boxes_checked"].value == len(overlays)

    # The same badge at the top of the frame sits under the platform's search bar.
    high = (("badge-3.png", (badge.x, 40, badge.width, badge.height)),)
    plan = VideoPlan(size=frame, max_duration=60, duration=SECONDS, overlays=high)
    result = judge(good, plan)["text_inside_safe_area"]
    assert not result.passed and "badge-3.png" in result.metadata["outside"].value
    assert result.severity is dg.AssetCheckSeverity.WARN

    # Subtitles 20 px from the bottom edge sit under the caption and buttons.
    _set_margin_v(ass, 20)
    dropped = tuple((f"subtitle {n}", box) for n, box in enumerate(subtitle_boxes(ass), 1))
    assert all(box[1] + box[3] > 1920 - 400 for _, box in dropped)
    plan = VideoPlan(size=frame, max_duration=60, duration=SECONDS, overlays=dropped)
    assert not judge(good, plan)["text_inside_safe_area"].passed


def _set_margin_v(ass: Path, pixels: int) -> None:
    """Rewrites the subtitle style's MarginV (the field before the last)."""
    lines = ass.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if line.startswith("Style:"):
            fields = line.split(",")
            fields[-2] = str(pixels)
            lines[index] = ",".join(fields)
    ass.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- upstream checks ---------------------------------------------------------------------------


def test_script_length_is_checked_against_the_target_for_explainers_only():
    assert speech_length_check(ProjectFormat.explainer, 40.0, 45.0).passed
    short = speech_length_check(ProjectFormat.explainer, 12.0, 45.0)
    assert not short.passed and short.severity is dg.AssetCheckSeverity.WARN
    assert short.metadata["accepted_s"].value == "22.5–67.5"
    assert not speech_length_check(ProjectFormat.explainer, 80.0, 45.0).passed
    assert speech_length_check(ProjectFormat.ranking, 12.0, 45.0).passed


def test_narration_is_checked_against_the_room_the_plan_gives_it():
    scenes = [
        SceneAudio(index=i, text="x", media_key="k", duration=d) for i, d in enumerate([4, 9])
    ]
    explainer = narration_fit_check(
        ProjectFormat.explainer, scenes, pad=0.4, max_duration=60, segment_seconds=5
    )
    assert explainer.passed
    assert not narration_fit_check(
        ProjectFormat.explainer, scenes, pad=0.4, max_duration=10, segment_seconds=5
    ).passed
    fits = narration_fit_check(
        ProjectFormat.extend, scenes, pad=0.4, max_duration=60, segment_seconds=10
    )
    assert fits.passed
    too_long = narration_fit_check(
        ProjectFormat.extend, scenes, pad=0.4, max_duration=60, segment_seconds=5
    )
    assert not too_long.passed
    assert too_long.metadata["room_per_segment_s"].value == pytest.approx(5 - VOICE_LEAD)
    assert too_long.metadata["too_long"].value == "segment 2: 9.00 s"


def test_selected_clips_decodable_counts_the_clips():
    replaced = [SkippedClip(clip_id="zz", title="broken", reason="truncated: ...")]
    ok = decodable_check([("a", None), ("b", None)], replaced)
    assert ok.passed
    assert ok.metadata["decodable"].value == 2 and ok.metadata["replaced_candidates"].value == 1
    bad = decodable_check([("a", None), ("b", "not stored")], [])
    assert not bad.passed and bad.metadata["not_decodable"].value == "b: not stored"


# --- in Dagster --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_failing_blocking_check_stops_upload(tmp_path, shorts_home):
    library = tmp_path / "library"
    library.mkdir()
    ffmpeg(
        "-f", "lavfi", "-i", "color=c=black:s=640x360:r=30:d=3",
        "-f", "lavfi", "-i", "sine=f=440:d=3:r=48000",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
        "-shortest", library / "blackout.mp4",
    )  # fmt: skip
    (library / "catalog.json").write_text(
        json.dumps([{"id": "blackout", "file": "blackout.mp4", "title": "Power blackout"}])
    )
    catalog = CatalogResource()
    spec = catalog.add_project(
        "Blackout",
        keywords=["blackout"],
        settings=fast_settings(count=1, music=None, title_seconds=0, outro_seconds=0),
    )
    result = materialize_project(
        spec.key, project_resources(library), dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert not result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    black = checks["no_black_segments"]
    assert not black.passed and black.severity is dg.AssetCheckSeverity.ERROR
    assert black.metadata["longest_black_s"].value >= 0.5
    # The early checks ran and passed; the video was made and recorded, then the run stopped.
    assert checks["selected_clips_decodable"].passed
    assert checks["speech_length_near_target"].passed
    materialized = {m.asset_key.path[-1] for m in result.get_asset_materialization_events()}
    assert "video" in materialized and "upload" not in materialized
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert "video" in started and "upload" not in started
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "video"
    assert "no_black_segments" in str(failure.step_failure_data.error)
    project = catalog.get_project(spec.key)
    assert project.status is ProjectStatus.failed
    assert "no_black_segments" in (catalog.last_error(spec.key) or "")


def _project() -> ProjectSpec:
    return ProjectSpec(key="p", title="p", format=ProjectFormat.explainer)
