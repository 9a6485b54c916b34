"""The ranking format as a timeline: title card, clips #N..#1 with their badges, outro."""

from __future__ import annotations

import dataclasses
import math
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
    VoiceCue,
)

VOICE_LEAD = 0.25  # the voice starts a moment after a clip appears
VOICE_PAD = 0.3  # and ends this long before the clip's transition begins


@dataclass(frozen=True)
class Spoken:
    """A narration line: its audio file and measured length."""

    path: str
    seconds: float


@dataclass(frozen=True)
class RankedClip:
    rank: int
    info: MediaInfo
    start: float
    seconds: float
    badge: Overlay | None
    voice: Spoken | None = None


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
    intro_voice: Spoken | None = None,
    outro_voice: Spoken | None = None,
    duck_db: float = -12.0,
    encoder: EncoderSettings | None = None,
) -> Timeline:
    """Count down: the highest rank number first, #1 last, as viewers expect.

    With narration, each line is heard from just after its segment appears; a segment is
    lengthened (a clip holds its last frame) when its line would run into the transition."""
    # The overlap between segments, as the timeline will compute it (whole frames).
    overlap = 0.0 if transition == "none" else math.floor(transition_seconds * 30) / 30
    planned: list[tuple[Segment, Spoken | None]] = []
    if title_card and (title_seconds > 0 or intro_voice):
        seconds = _room_for(intro_voice, title_seconds, overlap)
        planned.append((StillSegment(title_card, seconds), intro_voice))
    for clip in sorted(clips, key=lambda c: -c.rank):
        overlays = (clip.badge,) if clip.badge else ()
        seconds = _room_for(clip.voice, clip.seconds, overlap)
        planned.append((ClipSegment(clip.info, clip.start, seconds, overlays), clip.voice))
    if outro_card and (outro_seconds > 0 or outro_voice):
        seconds = _room_for(outro_voice, outro_seconds, 0.0)
        planned.append((StillSegment(outro_card, seconds), outro_voice))
    timeline = Timeline(
        segments=[seg for seg, _ in planned],
        fit=fit,
        transition=transition,
        transition_seconds=transition_seconds,
        music=music,
        music_db=music_db,
        duck_db=duck_db,
        encoder=encoder or EncoderSettings(),
    )
    starts = timeline.segment_starts()
    cues = [
        VoiceCue(line.path, start + VOICE_LEAD, line.seconds)
        for (_, line), start in zip(planned, starts, strict=True)
        if line is not None and line.seconds > 0
    ]
    return dataclasses.replace(timeline, voice=cues) if cues else timeline


def _room_for(line: Spoken | None, seconds: float, overlap: float) -> float:
    """A segment's length: its own, or longer when its narration needs the room."""
    if line is None:
        return seconds
    needed = VOICE_LEAD + line.seconds + VOICE_PAD + overlap
    return max(seconds, math.ceil(needed * 30) / 30)


def number_one_midpoint(timeline: Timeline) -> float:
    """The middle of the #1 clip (the last clip in a countdown): the thumbnail's moment."""
    starts = timeline.segment_starts()
    for i in range(len(timeline.segments) - 1, -1, -1):
        seg = timeline.segments[i]
        if isinstance(seg, ClipSegment):
            return starts[i] + seg.duration / 2
    return timeline.duration / 2
