"""The ranking format as a timeline: title card, clips #N..#1 with their badges, outro."""

from __future__ import annotations

from dataclasses import dataclass

from shorts_pipeline.render.geometry import Overlay
from shorts_pipeline.render.probe import MediaInfo
from shorts_pipeline.render.timeline import (
    ClipSegment,
    EncoderSettings,
    FitMode,
    Segment,
    StillSegment,
    Timeline,
)


@dataclass(frozen=True)
class RankedClip:
    rank: int
    info: MediaInfo
    start: float
    seconds: float
    badge: Overlay | None


def ranking_timeline(
    clips: list[RankedClip],
    *,
    title_card: str | None,
    outro_card: str | None,
    title_seconds: float = 2.0,
    outro_seconds: float = 2.0,
    fit: FitMode = "cover",
    transition: str = "fade",
    transition_seconds: float = 0.4,
    music: str | None = None,
    music_db: float = -16.0,
    encoder: EncoderSettings | None = None,
) -> Timeline:
    """Count down: the highest rank number first, #1 last, as viewers expect."""
    segments: list[Segment] = []
    if title_card and title_seconds > 0:
        segments.append(StillSegment(title_card, title_seconds))
    for clip in sorted(clips, key=lambda c: -c.rank):
        overlays = (clip.badge,) if clip.badge else ()
        segments.append(ClipSegment(clip.info, clip.start, clip.seconds, overlays))
    if outro_card and outro_seconds > 0:
        segments.append(StillSegment(outro_card, outro_seconds))
    return Timeline(
        segments=segments,
        fit=fit,
        transition=transition,
        transition_seconds=transition_seconds,
        music=music,
        music_db=music_db,
        encoder=encoder or EncoderSettings(),
    )


def number_one_midpoint(timeline: Timeline) -> float:
    """The middle of the #1 clip (the last clip in a countdown): the thumbnail's moment."""
    starts = timeline.segment_starts()
    for i in range(len(timeline.segments) - 1, -1, -1):
        seg = timeline.segments[i]
        if isinstance(seg, ClipSegment):
            return starts[i] + seg.duration / 2
    return timeline.duration / 2
