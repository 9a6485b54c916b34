"""Extend videos: generated segments analysed for continuity, then joined in one render.

How two segments A and B (B generated from a frame of A) are joined:

1. The reference frame is the sharpest frame near A's end (generated video blurs and
   smears; a soft reference makes B softer still), picked from the `tail_window` seconds
   that end `seam` seconds before A does, so A has `seam` seconds left after it.
2. B's first frame *is* the reference, and models often hold it for a few frames before
   moving ("the stall at every seam"): B's leading frames that merely repeat the reference
   are skipped.
3. A runs on `seam` seconds past its reference frame and B starts where its repeats end, so
   the crossfade blends the two *at the same moment* of the shot — A's own continuation with
   B's — instead of blending A's past with B's future. No frame is shown twice and the
   motion does not stop.
4. Every segment is colour-matched to segment 1 (see `continuity`): a constant per-plane
   LUT in the same graph. The reference handed to the next segment is matched too, so the
   generator starts each hop from segment 1's colours and drift cannot accumulate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shorts_pipeline.render.continuity import (
    ColourMatch,
    FrameStats,
    colour_distance,
    colour_match,
    leading_duplicates,
    segment_stats,
    sharpest_tail_frame,
)
from shorts_pipeline.render.errors import MediaError
from shorts_pipeline.render.ffmpeg_run import run_ffmpeg
from shorts_pipeline.render.geometry import Overlay
from shorts_pipeline.render.probe import MediaInfo, probe_clip
from shorts_pipeline.render.timeline import ClipSegment, Timeline, VoiceCue

MIN_SEGMENT_SECONDS = 1.0  # a provider's answer shorter than this is refused
LENGTH_TOLERANCE = 0.25  # seconds longer than planned before a segment is cut to length
ASPECT_TOLERANCE = 0.01
MIN_GAIN, MAX_GAIN = 0.8, 1.25  # colour-match gains per plane
IDENTITY = ColourMatch(gain=(1.0, 1.0, 1.0), offset=(0.0, 0.0, 0.0))


@dataclass(frozen=True)
class SegmentAnalysis:
    """How one generated segment joins the video."""

    info: MediaInfo
    stats: FrameStats
    match: ColourMatch
    start: float  # seconds skipped at the start (frames repeating the reference)
    end: float  # where the segment is cut (the seam's crossfade included)
    reference_time: float | None  # the frame handed to the next segment, None for the last
    drift_before: float
    drift_after: float
    notes: list[str] = field(default_factory=list)


def normalise_segment(
    path: Path, *, width: int, height: int, planned_seconds: float
) -> tuple[Path, list[str]]:
    """The segment as the plan asked for it: cover-cropped to the planned aspect and cut to
    the planned length when the provider returned something else. Returns the path to use
    (`path` itself when nothing was wrong, else a normalised copy beside it) and notes."""
    info = probe_clip(path)
    notes = []
    if info.duration < MIN_SEGMENT_SECONDS:
        raise MediaError(
            str(path),
            f"the provider returned {info.duration:.2f} s of video; at least "
            f"{MIN_SEGMENT_SECONDS:g} s is needed",
        )
    aspect = info.display_width / info.display_height
    wrong_shape = abs(aspect - width / height) > ASPECT_TOLERANCE * (width / height)
    too_long = info.duration > planned_seconds + LENGTH_TOLERANCE
    if info.duration < planned_seconds - LENGTH_TOLERANCE:
        notes.append(f"{info.duration:.2f} s instead of {planned_seconds:g} s: used as it is")
    if not wrong_shape and not too_long:
        return path, notes
    if wrong_shape:
        notes.append(
            f"{info.display_width}x{info.display_height} instead of {width}x{height}: "
            "cover-cropped to the planned aspect"
        )
    if too_long:
        notes.append(f"{info.duration:.2f} s instead of {planned_seconds:g} s: cut to length")
    out = path.with_name(path.stem + ".normalised.mp4")
    tmp = out.with_name(f".{out.name}.partial.mp4")
    seconds = min(info.duration, planned_seconds)
    vf = (
        f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=bicubic,"
        f"crop={width}:{height},setsar=1,format=yuv420p"
    )
    try:
        run_ffmpeg(
            [
                "-i",
                str(path),
                "-t",
                f"{seconds:.3f}",
                "-vf",
                vf,
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "14",
                "-c:a",
                "aac",
                "-movflags",
                "+faststart",
                str(tmp),
            ],
            what=f"normalisation of {path.name}",
        )
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out, notes


def analyse_segment(
    path: Path,
    *,
    index: int,
    count: int,
    reference: Path | None,
    base: FrameStats | None,
    match_colours: bool,
    seam: float,
    tail_window: float,
    next_reference: Path | None,
) -> SegmentAnalysis:
    """Measure segment `index` (0-based) of `count`: its colour match to segment 1 (`base`;
    None when this is segment 1), the frames at its start that repeat `reference`, and — when
    another segment follows — the sharpest late frame, written colour-matched to
    `next_reference` for the next segment to start from."""
    info = probe_clip(path)
    stats = segment_stats(path)
    notes: list[str] = []
    if base is None or not match_colours:
        match = IDENTITY
    else:
        # Gains stay near 1: a drifting generator shifts colours and saturation a little per
        # hop; a bigger difference in contrast is the picture's own content changing.
        match = colour_match(stats, base, min_gain=MIN_GAIN, max_gain=MAX_GAIN)
    drift_before = colour_distance(stats, base) if base is not None else 0.0
    drift_after = colour_distance(match.apply_to_stats(stats), base) if base is not None else 0.0
    frame = 1 / info.fps
    # Keep at least the seam's length plus a second of the segment.
    most = max(0, int((info.duration - seam - 1.0) * info.fps))
    if reference is not None:
        # Frame 0 is the reference itself, already shown: skip it and any copies of it.
        repeats = min(leading_duplicates(path, reference), most)
        if repeats > 1:
            notes.append(f"skipped {repeats} frames that repeat the reference (a stall)")
    else:
        # The first segment keeps its first frame but not a model's hold on it.
        first = path.with_name(f".{path.stem}.first.png")
        try:
            _first_frame(path, first)
            repeats = max(0, min(leading_duplicates(path, first), most + 1) - 1)
        finally:
            first.unlink(missing_ok=True)
        if repeats:
            notes.append(f"skipped {repeats} frames that hold the opening picture (a stall)")
    start = repeats * frame
    reference_time = None
    end = info.duration
    if index < count - 1:
        if next_reference is None:
            raise ValueError("next_reference is needed for every segment but the last")
        room = max(frame, info.duration - start - 1.0)
        window = min(tail_window, room)
        tail = sharpest_tail_frame(path, next_reference, window=window, end=info.duration - seam)
        reference_time = tail.time
        if base is not None and match_colours:
            # The next segment starts from this frame with the cast taken away (the means
            # moved to segment 1's) but its contrast untouched: a gain fitted to a whole
            # segment's statistics would also "correct" this frame's own content, hop after
            # hop, while an additive cast is what generators add.
            cast = ColourMatch(
                gain=(1.0, 1.0, 1.0),
                offset=(
                    base.mean[0] - stats.mean[0],
                    base.mean[1] - stats.mean[1],
                    base.mean[2] - stats.mean[2],
                ),
            )
            if not cast.identity:
                cast.apply_to_image(next_reference, next_reference)
        end = min(info.duration, tail.time + frame + seam)
    return SegmentAnalysis(
        info=info,
        stats=stats,
        match=match,
        start=round(start, 4),
        end=round(end, 4),
        reference_time=reference_time,
        drift_before=round(drift_before, 2),
        drift_after=round(drift_after, 2),
        notes=notes,
    )


@dataclass(frozen=True)
class ExtendPart:
    """One segment as the render uses it."""

    info: MediaInfo
    start: float
    end: float
    colour: str = ""  # a filter fragment (numbers only) applied after the fit
    overlays: tuple[Overlay, ...] = ()


def _first_frame(path: Path, dest: Path) -> None:
    run_ffmpeg(["-i", str(path), "-frames:v", "1", str(dest)], what=f"first frame of {path.name}")


def extend_timeline(
    parts: Sequence[ExtendPart],
    *,
    seam: float,
    width: int,
    height: int,
    music: str | None,
    music_db: float,
    voice: Sequence[VoiceCue] = (),
    duck_db: float = -12.0,
) -> Timeline:
    """The segments joined with `seam`-second crossfades, at the output size."""
    segments = [
        ClipSegment(
            p.info,
            p.start,
            round(p.end - p.start, 4),
            overlays=p.overlays,
            colour=p.colour,
        )
        for p in parts
    ]
    return Timeline(
        segments=segments,
        fit="cover",
        transition="fade" if seam > 0 else "none",
        transition_seconds=seam,
        music=music,
        music_db=music_db,
        voice=voice,
        duck_db=duck_db,
        width=width,
        height=height,
    )


def naive_join(paths: Sequence[Path], out: Path, *, fps: int = 30) -> Path:
    """What the usual scripts do — every segment whole, end to end, hard cuts — for the
    before/after measurements of the seams (benchmarks and tests only)."""
    inputs = [arg for p in paths for arg in ("-i", str(p))]
    chains = "".join(f"[{i}:v]fps={fps},format=yuv420p,setsar=1[v{i}];" for i in range(len(paths)))
    joined = "".join(f"[v{i}]" for i in range(len(paths)))
    graph = f"{chains}{joined}concat=n={len(paths)}:v=1:a=0[out]"
    run_ffmpeg(
        [
            *inputs,
            "-filter_complex",
            graph,
            "-map",
            "[out]",
            "-c:v",
            "libx264",
            "-crf",
            "16",
            "-preset",
            "veryfast",
            str(out),
        ],
        what="naive join",
    )
    return out


__all__ = [
    "ExtendPart",
    "SegmentAnalysis",
    "analyse_segment",
    "extend_timeline",
    "naive_join",
    "normalise_segment",
]
