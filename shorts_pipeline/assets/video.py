"""video: the finished MP4 (1080x1920 unless an extend project asks for another aspect),
rendered in one ffmpeg process, with blocking checks."""

import dataclasses
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from shorts_pipeline.assets import reuse
from shorts_pipeline.assets.common import (
    OWNERS,
    image_markdown,
    preview_url,
    project_media_key,
    project_of,
)
from shorts_pipeline.assets.narration import VOICE_LEAD
from shorts_pipeline.home import cache_dir
from shorts_pipeline.models import (
    OUTPUT_SIZES,
    Narration,
    ProjectFormat,
    ProjectSettings,
    ProjectSpec,
    ProjectStatus,
    SceneAudio,
    SegmentSet,
    Selections,
    SlideSet,
    VideoRecord,
    VideoScript,
)
from shorts_pipeline.partitions import project_partitions
from shorts_pipeline.render.continuity import ColourMatch
from shorts_pipeline.render.errors import MediaError
from shorts_pipeline.render.explainer import ExplainerScene, explainer_timeline
from shorts_pipeline.render.extend import ExtendPart, extend_timeline
from shorts_pipeline.render.geometry import Overlay, safe_area
from shorts_pipeline.render.inspect import (
    BLACK_MIN_SECONDS,
    FREEZE_MIN_SECONDS,
    SILENCE_MIN_SECONDS,
    Box,
    Stretch,
    VideoFacts,
    facts_from_json,
    facts_to_json,
    inspect_video,
    subtitle_boxes,
)
from shorts_pipeline.render.ranking import (
    RankedClip,
    Spoken,
    number_one_midpoint,
    ranking_timeline,
)
from shorts_pipeline.render.speech_text import spoken_text
from shorts_pipeline.render.subtitles import Cue, SpokenScene, build_cues, write_ass, write_srt
from shorts_pipeline.render.synth import make_music_bed
from shorts_pipeline.render.timeline import (
    MOTIONS,
    ClipSegment,
    StillSegment,
    Timeline,
    VoiceCue,
    render_timeline,
)
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.llm import speaking_seconds
from shorts_pipeline.resources.media_store import MediaStoreResource

LOUDNESS_TARGET = -14.0
LOUDNESS_TOLERANCE = 1.0
TRUE_PEAK_LIMIT = -1.0  # dBTP
PLAN_TOLERANCE = 0.1  # seconds between the file and the timeline it was rendered from
AV_TOLERANCE = 0.05  # seconds between the video and the audio stream
DURATION_SLACK = 0.05  # seconds over max_duration still accepted (frame rounding)


def _spec(name: str, description: str, *, blocking: bool) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset="video", blocking=blocking, description=description)


# Blocking: a failure would put a broken video on the channel (the run stops before
# `upload`). Warnings: worth fixing, not worth holding the video back.
CHECKS = [
    _spec(
        "resolution",
        "The video has the project's size (1080x1920 for 9:16) and square pixels.",
        blocking=True,
    ),
    _spec(
        "frame_rate_30",
        "The video runs at 30 fps, constantly: ffprobe's r_frame_rate equals its average "
        "frame rate (no variable frame rate).",
        blocking=True,
    ),
    _spec(
        "duration_within_limit",
        "The video is no longer than the project's platform limit (settings.max_duration).",
        blocking=True,
    ),
    _spec(
        "duration_matches_plan",
        f"The file runs within ±{PLAN_TOLERANCE} s of the timeline it was rendered from "
        "(nothing cut off, nothing added).",
        blocking=True,
    ),
    _spec("has_audio", "The video has an AAC 48 kHz audio stream.", blocking=True),
    _spec(
        "loudness_minus_14_lufs",
        "Integrated loudness is within ±1 LU of −14 LUFS (EBU R128).",
        blocking=True,
    ),
    _spec(
        "true_peak_below_minus_1_dbtp",
        "The true peak is at most −1 dBTP (no clipping after the platforms' transcodes).",
        blocking=False,
    ),
    _spec(
        "audio_video_durations_match",
        f"The audio and video streams end within {AV_TOLERANCE * 1000:.0f} ms of each other "
        "(neither is truncated).",
        blocking=True,
    ),
    _spec(
        "no_black_segments",
        f"No stretch of {BLACK_MIN_SECONDS} s or more is black (ffmpeg blackdetect).",
        blocking=True,
    ),
    _spec(
        "no_frozen_segments",
        f"No stretch of {FREEZE_MIN_SECONDS} s or more is frozen (ffmpeg freezedetect), "
        "except where the timeline shows a still on purpose (a card or slide without "
        "motion, a clip's last frame held past the end of its source).",
        blocking=True,
    ),
    _spec(
        "no_silent_gaps",
        f"Narrated videos: no silence of {SILENCE_MIN_SECONDS} s or more between the first "
        "and the last line of narration (ffmpeg silencedetect).",
        blocking=True,
    ),
    _spec(
        "text_inside_safe_area",
        "Rank badges, captions and subtitles lie inside the platform safe area (not under "
        "the Shorts/TikTok buttons and captions).",
        blocking=False,
    ),
    _spec(
        "faststart",
        "The MP4's index (moov) comes before its media (mdat): it plays while it loads.",
        blocking=False,
    ),
    _spec(
        "h264_yuv420p",
        "The video is H.264 in yuv420p, which every player and platform decodes.",
        blocking=True,
    ),
    _spec(
        "h264_high_profile",
        "The video uses H.264's High profile (Baseline and Main waste bits).",
        blocking=False,
    ),
]


@dg.asset(
    partitions_def=project_partitions,
    group_name="production",
    kinds={"ffmpeg", "mp4"},
    owners=OWNERS,
    check_specs=CHECKS,
    pool="ffmpeg",
)
def video(
    context: dg.AssetExecutionContext,
    selections: Selections,
    script: VideoScript,
    narration: Narration,
    slides: SlideSet,
    segments: SegmentSet,
    catalog: CatalogResource,
    media_store: MediaStoreResource,
):  # untyped: with check_specs, Dagster reads a return annotation as output types
    """The finished vertical video in one ffmpeg process, one filter graph: H.264 High/AAC,
    1080x1920, 30 fps, +faststart, loudness at −14 LUFS, plus a JPEG thumbnail and the SRT.
    Ranking: title card, clips #N..#1 fitted to the frame with their rank badges, transitions,
    outro, music under the clips' sound. Explainer: one slide (Ken Burns) or b-roll clip per
    scene, each as long as its narration. Extend: the generated segments, each cut where the
    next continues, colour-matched to the first, cross-faded at the seams (storyboards keep
    their label). All: the voice over the music and clip sound, which
    dip under it, and subtitles burned in, timed to the words. Checks judge the file ffprobe
    reads back. A re-run with nothing changed (the same timeline, input files, render code,
    ffmpeg and fonts) reuses the stored video, thumbnail and quality scan instead of rendering
    again, and says so (`reused`)."""
    project = project_of(context, catalog)
    settings = project.settings
    scratch = Path(tempfile.mkdtemp(prefix="video-", dir=cache_dir()))
    scratch_subs: Path | None = None
    try:
        if project.format is ProjectFormat.explainer:
            timeline, thumb_at = _explainer(
                project, script, slides, narration, selections, media_store
            )
        elif project.format is ProjectFormat.extend:
            timeline, thumb_at = _extend(context, project, segments, slides, narration, media_store)
        else:
            timeline, thumb_at = _ranking(
                project, selections, slides, script, narration, media_store
            )
        if timeline.duration > settings.max_duration + 0.05:
            raise dg.Failure(
                description=(
                    f"the video would run {timeline.duration:.1f} s; the limit is "
                    f"{settings.max_duration:.0f} s (settings.max_duration). Shorten the "
                    f"narration (`shorts script {project.key} --edit FILE`) or show fewer clips"
                ),
                allow_retries=False,
            )
        video_key = project_media_key(project, "video.mp4")
        thumb_key = project_media_key(project, "thumbnail.jpg")
        record_key = project_media_key(project, RECORD_NAME)
        fingerprint = render_fingerprint(timeline, thumb_at, narration, settings)
        made = _reusable(media_store, record_key, fingerprint, video_key, thumb_key)
        if made is not None:
            context.log.info(
                f"nothing the video is made from has changed since its render at "
                f"{made.rendered_at}: reusing it, its thumbnail, subtitles and quality scan"
            )
        else:
            # The files are about to be replaced: no record may describe them until the new
            # one is written, last.
            reuse.forget_record(media_store, record_key)
            srt_key = None
            subtitle_layout: list[Box] = []
            cues = _cues(timeline, narration, settings)
            if cues:
                # libass reads the file from inside the filter graph: it lives in a fresh
                # temporary folder whose path is plain ASCII, whatever SHORTS_HOME is called.
                scratch_subs = Path(tempfile.mkdtemp(prefix="shorts-subs-"))
                ass = scratch_subs / "subtitles.ass"
                write_ass(
                    cues,
                    ass,
                    frame=(timeline.width, timeline.height),
                    font_size=settings.subtitles.font_size,
                    highlight_words=settings.subtitles.highlight_words,
                    position=settings.subtitles.position,
                    max_lines=settings.subtitles.max_lines,
                )
                srt = scratch / "subtitles.srt"
                write_srt(cues, srt)
                srt_key = media_store.put(srt, project_media_key(project, "subtitles.srt"))
                timeline = dataclasses.replace(timeline, subtitles=str(ass))
                subtitle_layout = subtitle_boxes(ass)
            context.log.info(
                f"rendering {timeline.duration:.1f} s: {len(timeline.segments)} segments, "
                f"{len(timeline.voice)} voice cues, {len(cues)} subtitle cues, in one ffmpeg "
                "process"
            )
            made = _render(
                context, project, timeline, thumb_at, scratch, media_store, video_key, thumb_key
            )
            made = dataclasses.replace(
                made,
                subtitles_key=srt_key,
                subtitle_cues=len(cues),
                subtitle_layout=tuple(subtitle_layout),
            )
            reuse.save_record(media_store, record_key, made.record(fingerprint))
        preview = image_markdown(media_store.local_path(thumb_key), max_width=120)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if scratch_subs is not None:
            shutil.rmtree(scratch_subs, ignore_errors=True)
    srt_key = made.subtitles_key
    facts = made.facts
    loud = facts.loudness
    record = VideoRecord(
        project_key=project.key,
        media_key=video_key,
        thumbnail_key=thumb_key,
        duration=facts.duration,
        width=facts.width,
        height=facts.height,
        fps=facts.fps,
        size_bytes=facts.size_bytes,
        loudness_lufs=loud.integrated_lufs if loud else None,
        true_peak_dbtp=loud.true_peak_dbtp if loud else None,
        render_seconds=round(made.render_seconds, 2),
        subtitles_key=srt_key,
    )
    checks = video_checks(facts, video_plan(timeline, project, made.subtitle_layout))
    failed = [
        c.check_name or ""
        for c in checks
        if not c.passed and c.severity is dg.AssetCheckSeverity.ERROR
    ]
    for check in checks:
        if not check.passed and check.severity is dg.AssetCheckSeverity.WARN:
            measured = ", ".join(
                f"{k}={getattr(v, 'value', v)}" for k, v in (check.metadata or {}).items()
            )
            context.log.warning(f"check {check.check_name} failed (a warning): {measured}")
    if failed:
        catalog.set_status(project.key, ProjectStatus.failed, f"checks failed: {', '.join(failed)}")
    else:
        catalog.set_status(project.key, ProjectStatus.rendered)
        if project.review and not made.reused:
            # A new render needs a new decision: an earlier approval was for other pictures.
            # A reused video is the very one that was reviewed: its decision stands.
            catalog.set_review(project.key, "pending", by="render")
    metadata: dict[str, Any] = {}
    if media_store.is_local:  # ("path" is the IO manager's: where Dagster keeps the record)
        metadata["video_file"] = dg.MetadataValue.path(str(media_store.local_path(video_key)))
    return dg.MaterializeResult(
        value=record,
        metadata={
            "thumbnail": dg.MetadataValue.md(preview),
            "preview": dg.MetadataValue.url(preview_url(project.key)),
            "video_url": dg.MetadataValue.url(media_store.url_for(video_key)),
            "duration_s": round(facts.duration, 2),
            "size_mb": round(facts.size_bytes / 1e6, 2),
            "resolution": f"{facts.width}x{facts.height}",
            "fps": facts.fps,
            "loudness_lufs": _number(record.loudness_lufs),
            "true_peak_dbtp": _number(record.true_peak_dbtp),
            "reused": made.reused,
            "rendered_at": made.rendered_at,
            "render_s": record.render_seconds,
            "realtime_factor": round(facts.duration / max(made.render_seconds, 1e-6), 2),
            "quality_scan_s": facts.scan.seconds if facts.scan else "n/a",
            "encoder": made.encoder,
            "voice_cues": len(timeline.voice),
            "subtitle_cues": made.subtitle_cues,
            "subtitles": dg.MetadataValue.url(media_store.url_for(srt_key)) if srt_key else "none",
            **metadata,
        },
        check_results=checks,
    )


# --- reuse of an unchanged render -----------------------------------------------------------

RECORD_NAME = "video.reuse.json"
# The code a render depends on beyond its inputs: the render engine (all of it: the filter
# graph, encoder settings, loudness, subtitles) and this module (the subtitle cues).
RENDER_CODE = ("shorts_pipeline.render", "shorts_pipeline.assets.video")


@dataclass(frozen=True)
class _Made:
    """A rendered video's facts (the quality scan included) and how it was made."""

    facts: VideoFacts
    render_seconds: float
    encoder: str
    rendered_at: str
    sha256: str
    subtitles_key: str | None = None
    subtitle_cues: int = 0
    subtitle_layout: tuple[Box, ...] = ()  # each burned-in subtitle line's box
    reused: bool = False

    def record(self, fingerprint: str) -> dict[str, Any]:
        return {
            "fingerprint": fingerprint,
            "sha256": self.sha256,
            "size_bytes": self.facts.size_bytes,
            "facts": facts_to_json(self.facts),
            "render_seconds": self.render_seconds,
            "encoder": self.encoder,
            "rendered_at": self.rendered_at,
            "subtitles_key": self.subtitles_key,
            "subtitle_cues": self.subtitle_cues,
            "subtitle_layout": [list(box) for box in self.subtitle_layout],
        }


def render_fingerprint(
    timeline: Timeline, thumbnail_at: float, narration: Narration, settings: ProjectSettings
) -> str:
    """Everything the rendered file depends on: the timeline (every clip, still, overlay,
    voice file and music bed by content; cuts, fits, transitions, levels, encoder settings),
    what the subtitles are made from (each scene's words and their timings, the subtitle
    settings), where the thumbnail is taken, the code (the render engine, this module),
    ffmpeg and the fonts."""
    return reuse.fingerprint(
        "video",
        timeline,
        round(thumbnail_at, 3),
        [(s.index, s.media_key, s.text, s.duration, s.words) for s in narration.scenes],
        settings.subtitles,
        reuse.code_version(*RENDER_CODE),
        reuse.tools_identity(),
        reuse.fonts_identity(),
    )


def _reusable(
    media_store: MediaStoreResource,
    record_key: str,
    fingerprint: str,
    video_key: str,
    thumb_key: str,
) -> _Made | None:
    """The earlier render, when its record has this fingerprint and its files are still the
    ones recorded (size, and the content's digest on a local store); else None."""
    record = reuse.load_record(media_store, record_key)
    if record is None or record.get("fingerprint") != fingerprint:
        return None
    try:
        srt_key = record["subtitles_key"]
        if not reuse.all_stored(media_store, [video_key, thumb_key, srt_key]):
            return None
        if media_store.size(video_key) != record["size_bytes"]:
            return None
        local = media_store.local_path(video_key) if media_store.is_local else None
        if local is not None and reuse.file_digest(local) != record["sha256"]:
            return None
        return _Made(
            facts=facts_from_json(record["facts"]),
            render_seconds=float(record["render_seconds"]),
            encoder=str(record["encoder"]),
            rendered_at=str(record["rendered_at"]),
            sha256=str(record["sha256"]),
            subtitles_key=srt_key,
            subtitle_cues=int(record["subtitle_cues"]),
            subtitle_layout=tuple(
                (int(x), int(y), int(w), int(h)) for x, y, w, h in record["subtitle_layout"]
            ),
            reused=True,
        )
    except (KeyError, TypeError, ValueError, OSError):
        return None


def _render(
    context: dg.AssetExecutionContext,
    project: ProjectSpec,
    timeline: Timeline,
    thumb_at: float,
    scratch: Path,
    media_store: MediaStoreResource,
    video_key: str,
    thumb_key: str,
) -> _Made:
    """Render, scan and store the video and its thumbnail."""
    out, thumb = scratch / "video.mp4", scratch / "thumbnail.jpg"
    try:
        result = render_timeline(
            timeline,
            out,
            thumbnail_path=thumb,
            thumbnail_at=thumb_at,
            progress=_ProgressLog(context),
        )
    except MediaError as err:
        raise dg.Failure(description=f"render of {project.key} failed: {err}") from err
    for note in result.notes:
        context.log.warning(note)
    # One more decode of the finished file: loudness, black, frozen and silent stretches.
    facts = inspect_video(out, scan=True)
    digest = reuse.content_digest(out)
    media_store.put(out, video_key)
    media_store.put(thumb, thumb_key)
    if media_store.is_local:
        reuse.remember_digest(media_store.local_path(video_key), digest)
    return _Made(
        facts=facts,
        render_seconds=result.seconds,
        encoder=result.encoder,
        rendered_at=datetime.now(UTC).isoformat(timespec="seconds"),
        sha256=digest,
    )


def _number(value: float | None) -> float | str:
    return value if value is not None else "n/a"


def _ranking(
    project: ProjectSpec,
    selections: Selections,
    slides: SlideSet,
    script: VideoScript,
    narration: Narration,
    media_store: MediaStoreResource,
) -> tuple[Timeline, float]:
    settings = project.settings
    lines = _ranking_lines(script, narration, media_store)
    clips = []
    for clip in selections.clips:
        local = media_store.local_path(clip.media_key)
        x, y, w, h = slides.badge_boxes[clip.rank]
        badge = Overlay(str(media_store.local_path(slides.badges[clip.rank])), x, y, w, h)
        clips.append(
            RankedClip(
                # selections decoded each clip's end already; a header read is enough here
                clip.rank,
                reuse.probe_cached(local),
                clip.trim_start,
                clip.trim_seconds,
                badge,
                voice=lines.get(clip.rank),
            )
        )
    timeline = ranking_timeline(
        clips,
        title_card=_local(media_store, slides.title_card),
        outro_card=_local(media_store, slides.outro_card),
        title_seconds=settings.title_seconds,
        outro_seconds=settings.outro_seconds,
        fit=settings.fit,
        transition=settings.transition,
        transition_seconds=settings.transition_seconds,
        music=_music_path(settings),
        music_db=settings.music_db,
        intro_voice=lines.get("intro"),
        outro_voice=lines.get("outro"),
        duck_db=settings.duck_db,
    )
    return timeline, number_one_midpoint(timeline)


def _ranking_lines(
    script: VideoScript, narration: Narration, media_store: MediaStoreResource
) -> dict[int | str, Spoken]:
    """Each spoken line of a ranking script, keyed by the rank it introduces, or intro/outro."""
    if narration.skipped_reason:
        return {}
    audio = {s.index: s for s in narration.scenes}
    lines: dict[int | str, Spoken] = {}
    for index, scene in enumerate(script.scenes()):
        spoken = audio.get(index)
        if spoken is None or spoken.media_key is None:
            continue
        key: int | str | None = scene.clip_rank if scene.role == "clip" else scene.role
        if key is None or key in lines or key == "scene":
            continue
        lines[key] = Spoken(str(media_store.local_path(spoken.media_key)), spoken.duration)
    return lines


def _explainer(
    project: ProjectSpec,
    script: VideoScript,
    slides: SlideSet,
    narration: Narration,
    selections: Selections,
    media_store: MediaStoreResource,
) -> tuple[Timeline, float]:
    settings = project.settings
    audio = {s.index: s for s in narration.scenes}
    clips = {c.media_key: c for c in selections.clips}
    written = script.scenes()
    scenes = []
    for visual in slides.scenes:
        spoken = audio.get(visual.index)
        scene = written[visual.index]
        # The script's own duration for the scene, if it set one; with no voice, as long as
        # reading the scene's words takes.
        least = scene.duration or 0.0
        if spoken is None or not spoken.media_key:
            least = max(least, speaking_seconds(spoken_text(scene.narration), script.language))
        voice = (
            str(media_store.local_path(spoken.media_key))
            if spoken is not None and spoken.media_key
            else None
        )
        seconds = spoken.duration if spoken is not None else 0.0
        if visual.kind == "broll":
            clip = clips[visual.media_key]
            info = reuse.probe_cached(media_store.local_path(clip.media_key))
            scenes.append(
                ExplainerScene(
                    voice, seconds, clip=info, clip_start=visual.clip_start, min_seconds=least
                )
            )
        else:
            motion = (
                MOTIONS[visual.index % len(MOTIONS)]
                if settings.slide_style == "animated"
                else "none"
            )
            scenes.append(
                ExplainerScene(
                    voice,
                    seconds,
                    still=str(media_store.local_path(visual.media_key)),
                    motion=motion,
                    min_seconds=least,
                )
            )
    timeline = explainer_timeline(
        scenes,
        pad=settings.scene_pad_seconds,
        fit=settings.fit,
        transition=settings.transition,
        transition_seconds=settings.transition_seconds,
        music=_music_path(settings),
        music_db=settings.music_db,
        duck_db=settings.duck_db,
    )
    # The thumbnail: the first scene (the title), once its transition-free first second is on.
    return timeline, min(1.0, timeline.duration / 2)


def _extend(
    context: dg.AssetExecutionContext,
    project: ProjectSpec,
    segments: SegmentSet,
    slides: SlideSet,
    narration: Narration,
    media_store: MediaStoreResource,
) -> tuple[Timeline, float]:
    settings = project.settings
    width, height = output_size(project)
    parts = []
    for seg in segments.segments:
        overlays: tuple[Overlay, ...] = ()
        if seg.index in slides.captions:
            x, y, w, h = slides.caption_boxes[seg.index]
            path = str(media_store.local_path(slides.captions[seg.index]))
            overlays = (Overlay(path, x, y, w, h),)
        match = ColourMatch(gain=seg.colour_gain, offset=seg.colour_offset)
        parts.append(
            ExtendPart(
                reuse.probe_cached(media_store.local_path(seg.media_key)),
                seg.start,
                seg.end,
                colour="" if match.identity else match.ffmpeg_filter(),
                overlays=overlays,
            )
        )
    timeline = extend_timeline(
        parts,
        seam=settings.extend.seam_seconds,
        width=width,
        height=height,
        music=_music_path(settings),
        music_db=settings.music_db,
        duck_db=settings.duck_db,
    )
    # Each segment's line is heard from just after the segment starts.
    starts = timeline.segment_starts()
    voice = []
    for scene in narration.scenes:
        if not scene.media_key or scene.index >= len(starts):
            continue
        start = starts[scene.index] + VOICE_LEAD
        room = timeline.segments[scene.index].duration - VOICE_LEAD
        if scene.duration > room:
            context.log.warning(
                f"the narration of segment {scene.index + 1} runs {scene.duration:.1f} s, "
                f"longer than its {room:.1f} s on screen: shorten the line"
            )
        path = str(media_store.local_path(scene.media_key))
        voice.append(VoiceCue(path, start, scene.duration))
    timeline = dataclasses.replace(timeline, voice=tuple(voice))
    return timeline, min(1.0, timeline.duration / 2)


def output_size(project: ProjectSpec) -> tuple[int, int]:
    """The finished video's width and height."""
    if project.format is ProjectFormat.extend:
        return OUTPUT_SIZES[project.settings.extend.aspect]
    return OUTPUT_SIZES["9:16"]


def _cues(timeline: Timeline, narration: Narration, settings: ProjectSettings) -> list[Cue]:
    """Subtitle cues for every voice cue of the timeline, from the scenes' word timings."""
    if not settings.subtitles.enabled or not timeline.voice:
        return []
    by_path: dict[str, SceneAudio] = {
        Path(scene.media_key).name: scene for scene in narration.scenes if scene.media_key
    }
    starts = timeline.segment_starts()
    ends = [start + seg.duration for start, seg in zip(starts, timeline.segments, strict=True)]
    spoken = []
    for cue in timeline.voice:
        found = by_path.get(Path(cue.path).name)
        if found is None:
            continue
        # A cue never runs past the end of the segment it is spoken over: the last segment
        # to start before it (segments overlap by the crossfade, so not the first to end).
        spoken_over = max(i for i, start in enumerate(starts) if start <= cue.start + 1e-6)
        limit = ends[spoken_over]
        spoken.append(
            SpokenScene(
                start=cue.start,
                duration=cue.duration,
                text=found.text,
                words=tuple((w.word, w.start, w.end) for w in found.words),
                end_limit=min(limit, timeline.duration),
            )
        )
    return build_cues(
        spoken,
        font_size=settings.subtitles.font_size,
        max_lines=settings.subtitles.max_lines,
        frame=(timeline.width, timeline.height),
    )


def _local(media_store: MediaStoreResource, key: str | None) -> str | None:
    return str(media_store.local_path(key)) if key else None


# --- quality checks --------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoPlan:
    """What the video was rendered to be, as the checks compare the file with it."""

    size: tuple[int, int]
    max_duration: float
    duration: float  # the timeline's
    stills: tuple[Stretch, ...] = ()  # still on purpose: cards, slides, held last frames
    voice: Stretch | None = None  # from the first line of narration to the end of the last
    overlays: tuple[tuple[str, Box], ...] = ()  # (what, box) of text drawn over the picture


def video_plan(
    timeline: Timeline, project: ProjectSpec, subtitles: Sequence[Box] = ()
) -> VideoPlan:
    """The plan of a rendered `timeline`: its length, its still stretches, the span of its
    narration, and every overlay and subtitle box on it."""
    stills = tuple(_still_parts(timeline))
    voice = None
    if timeline.voice:
        voice = Stretch(
            min(cue.start for cue in timeline.voice),
            max(cue.start + cue.duration for cue in timeline.voice),
        )
    overlays: dict[str, Box] = {}
    for seg in timeline.segments:
        for overlay in seg.overlays:
            box = (overlay.x, overlay.y, overlay.width, overlay.height)
            overlays.setdefault(Path(overlay.path).name, box)
    named = [*overlays.items(), *((f"subtitle {n}", b) for n, b in enumerate(subtitles, 1))]
    return VideoPlan(
        size=(timeline.width, timeline.height),
        max_duration=project.settings.max_duration,
        duration=timeline.duration,
        stills=stills,
        voice=voice,
        overlays=tuple(named),
    )


def _still_parts(timeline: Timeline) -> list[Stretch]:
    """Where the timeline shows a still picture on purpose: cards and slides without motion,
    and a clip's last frame held past the end of its source (a ranking clip lengthened for
    its narration, b-roll shorter than its scene)."""
    parts = []
    for start, seg in zip(timeline.segment_starts(), timeline.segments, strict=True):
        if isinstance(seg, StillSegment) and seg.motion == "none":
            parts.append(Stretch(start, start + seg.duration))
        elif isinstance(seg, ClipSegment):
            runs_out = start + max(0.0, seg.info.duration - seg.start)
            if runs_out < start + seg.duration - 1 / timeline.fps:
                parts.append(Stretch(runs_out, start + seg.duration))
    return parts


def video_checks(facts: VideoFacts, plan: VideoPlan) -> list[dg.AssetCheckResult]:
    """Every check of `CHECKS`, judged on the facts of the finished file against its plan.
    Needs `inspect_video(..., scan=True)` facts: without the scan, the content checks fail."""
    results = [
        _resolution(facts, plan),
        _frame_rate(facts),
        _duration_within_limit(facts, plan),
        _duration_matches_plan(facts, plan),
        _has_audio(facts),
        _loudness(facts),
        _true_peak(facts),
        _av_durations(facts),
        _black(facts),
        _frozen(facts, plan),
        _silent(facts, plan),
        _safe_area(plan),
        _faststart(facts),
        _yuv420p(facts),
        _high_profile(facts),
    ]
    assert [r.check_name for r in results] == [spec.name for spec in CHECKS]
    return results


def _result(name: str, passed: bool, metadata: dict[str, Any]) -> dg.AssetCheckResult:
    blocking = next(spec.blocking for spec in CHECKS if spec.name == name)
    return dg.AssetCheckResult(
        check_name=name,
        passed=bool(passed),
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


def _resolution(facts: VideoFacts, plan: VideoPlan) -> dg.AssetCheckResult:
    size = plan.size
    return _result(
        "resolution",
        (facts.width, facts.height) == size and facts.sar in ("1:1", "N/A"),
        {
            "resolution": f"{facts.width}x{facts.height}",
            "expected": f"{size[0]}x{size[1]}",
            "sar": facts.sar,
        },
    )


def _frame_rate(facts: VideoFacts) -> dg.AssetCheckResult:
    constant = facts.base_fps > 0 and abs(facts.base_fps - facts.fps) <= 0.01 * facts.base_fps
    return _result(
        "frame_rate_30",
        abs(facts.fps - 30.0) < 0.01 and constant,
        {"fps": facts.fps, "r_frame_rate": facts.base_fps, "constant": constant},
    )


def _duration_within_limit(facts: VideoFacts, plan: VideoPlan) -> dg.AssetCheckResult:
    return _result(
        "duration_within_limit",
        0 < facts.duration <= plan.max_duration + DURATION_SLACK,
        {"duration_s": round(facts.duration, 3), "limit_s": plan.max_duration},
    )


def _duration_matches_plan(facts: VideoFacts, plan: VideoPlan) -> dg.AssetCheckResult:
    off = facts.duration - plan.duration
    return _result(
        "duration_matches_plan",
        abs(off) <= PLAN_TOLERANCE,
        {
            "duration_s": round(facts.duration, 3),
            "planned_s": round(plan.duration, 3),
            "difference_s": round(off, 3),
            "tolerance_s": PLAN_TOLERANCE,
        },
    )


def _has_audio(facts: VideoFacts) -> dg.AssetCheckResult:
    return _result(
        "has_audio",
        facts.has_audio and facts.audio_codec == "aac" and facts.audio_rate == 48000,
        {
            "audio": f"{facts.audio_codec} {facts.audio_rate} Hz {facts.audio_channels} ch"
            if facts.has_audio
            else "none"
        },
    )


def _loudness(facts: VideoFacts) -> dg.AssetCheckResult:
    lufs = facts.loudness.integrated_lufs if facts.loudness else None
    return _result(
        "loudness_minus_14_lufs",
        lufs is not None and abs(lufs - LOUDNESS_TARGET) <= LOUDNESS_TOLERANCE,
        {
            "integrated_lufs": lufs if lufs is not None else "no audio",
            "target_lufs": LOUDNESS_TARGET,
            "tolerance_lu": LOUDNESS_TOLERANCE,
        },
    )


def _true_peak(facts: VideoFacts) -> dg.AssetCheckResult:
    peak = facts.loudness.true_peak_dbtp if facts.loudness else None
    return _result(
        "true_peak_below_minus_1_dbtp",
        peak is not None and peak <= TRUE_PEAK_LIMIT,
        {
            "true_peak_dbtp": peak if peak is not None else "no audio",
            "limit_dbtp": TRUE_PEAK_LIMIT,
        },
    )


def _av_durations(facts: VideoFacts) -> dg.AssetCheckResult:
    video_s, audio_s = facts.video_seconds, facts.audio_seconds
    if video_s is None or audio_s is None:
        return _result(
            "audio_video_durations_match",
            False,
            {"video_s": video_s or "unknown", "audio_s": audio_s or "no audio"},
        )
    off = audio_s - video_s
    return _result(
        "audio_video_durations_match",
        abs(off) <= AV_TOLERANCE,
        {
            "video_s": round(video_s, 3),
            "audio_s": round(audio_s, 3),
            "mismatch_ms": round(off * 1000),
            "tolerance_ms": round(AV_TOLERANCE * 1000),
        },
    )


def _black(facts: VideoFacts) -> dg.AssetCheckResult:
    if facts.scan is None:
        return _result("no_black_segments", False, {"error": "the file was not scanned"})
    found = [s for s in facts.scan.black if s.duration >= BLACK_MIN_SECONDS]
    return _result(
        "no_black_segments",
        not found,
        {
            "black_segments": _stretches(found),
            "longest_black_s": _longest(facts.scan.black),
            "threshold_s": BLACK_MIN_SECONDS,
        },
    )


def _frozen(facts: VideoFacts, plan: VideoPlan) -> dg.AssetCheckResult:
    if facts.scan is None:
        return _result("no_frozen_segments", False, {"error": "the file was not scanned"})
    outside = [
        piece
        for freeze in facts.scan.frozen
        for piece in _outside(freeze, plan.stills)
        if piece.duration >= FREEZE_MIN_SECONDS - 1e-6
    ]
    return _result(
        "no_frozen_segments",
        not outside,
        {
            "frozen_segments": _stretches(outside),
            "longest_frozen_s": _longest(outside),
            "all_frozen": _stretches(facts.scan.frozen),
            "still_parts": _stretches(plan.stills),
            "threshold_s": FREEZE_MIN_SECONDS,
        },
    )


def _silent(facts: VideoFacts, plan: VideoPlan) -> dg.AssetCheckResult:
    if plan.voice is None:
        return _result("no_silent_gaps", True, {"narrated": False})
    if facts.scan is None:
        return _result("no_silent_gaps", False, {"error": "the file was not scanned"})
    span = plan.voice
    silent = facts.scan.silent if facts.has_audio else (span,)
    # Only between the first and the last line: cards before and after may be quiet.
    gaps = [
        Stretch(max(s.start, span.start), min(s.end, span.end))
        for s in silent
        if min(s.end, span.end) - max(s.start, span.start) >= SILENCE_MIN_SECONDS - 1e-6
    ]
    return _result(
        "no_silent_gaps",
        not gaps,
        {
            "narrated": True,
            "silent_gaps": _stretches(gaps),
            "longest_gap_s": _longest(gaps),
            "narration_span": _stretches([span]),
            "threshold_s": SILENCE_MIN_SECONDS,
        },
    )


def _safe_area(plan: VideoPlan) -> dg.AssetCheckResult:
    area = safe_area(*plan.size)
    outside = [(name, box) for name, box in plan.overlays if not area.contains(*box)]
    return _result(
        "text_inside_safe_area",
        not outside,
        {
            "boxes_checked": len(plan.overlays),
            "outside": ", ".join(f"{name} {list(box)}" for name, box in outside) or "none",
            "safe_area": f"x {area.left}–{area.right}, y {area.top}–{area.bottom}",
        },
    )


def _faststart(facts: VideoFacts) -> dg.AssetCheckResult:
    return _result(
        "faststart",
        facts.faststart,
        {"moov_before_mdat": facts.faststart},
    )


def _yuv420p(facts: VideoFacts) -> dg.AssetCheckResult:
    return _result(
        "h264_yuv420p",
        facts.video_codec == "h264" and facts.pix_fmt == "yuv420p",
        {"codec": facts.video_codec, "pix_fmt": facts.pix_fmt},
    )


def _high_profile(facts: VideoFacts) -> dg.AssetCheckResult:
    return _result(
        "h264_high_profile",
        facts.video_codec == "h264" and facts.profile == "High",
        {"codec": facts.video_codec, "profile": facts.profile},
    )


def _outside(stretch: Stretch, stills: Sequence[Stretch]) -> list[Stretch]:
    """The parts of `stretch` that no still covers."""
    pieces = [stretch]
    for still in sorted(stills, key=lambda s: s.start):
        rest = []
        for piece in pieces:
            if still.end <= piece.start or still.start >= piece.end:
                rest.append(piece)
                continue
            if piece.start < still.start:
                rest.append(Stretch(piece.start, still.start))
            if still.end < piece.end:
                rest.append(Stretch(still.end, piece.end))
        pieces = rest
    return pieces


def _stretches(stretches: Sequence[Stretch]) -> str:
    return ", ".join(f"{s.start:.2f}–{s.end:.2f} s" for s in stretches) or "none"


def _longest(stretches: Sequence[Stretch]) -> float:
    return round(max((s.duration for s in stretches), default=0.0), 3)


def _music_path(settings: ProjectSettings) -> str | None:
    if not settings.music:
        return None
    if settings.music == "bundled":
        # The bundled bed is synthesised once per machine (no binary in the repository).
        path = cache_dir() / "music" / "bed-v1.m4a"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            make_music_bed(path, seconds=60)
        return str(path)
    path = Path(settings.music).expanduser()
    if not path.is_file():
        raise dg.Failure(
            description=(
                f"music file {path} does not exist; set music to 'bundled', a file, or none"
            ),
            allow_retries=False,
        )
    return str(path)


class _ProgressLog:
    """ffmpeg progress into the Dagster log, every 10 %."""

    def __init__(self, context: dg.AssetExecutionContext) -> None:
        self.context = context
        self.next = 0.1

    def __call__(self, fraction: float) -> None:
        if fraction >= self.next or fraction >= 1.0:
            self.context.log.info(f"render progress {fraction:.0%}")
            while self.next <= fraction:
                self.next += 0.1
