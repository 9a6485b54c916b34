"""The explainer format as a timeline: one visual per scene, each as long as its narration.

A scene shows a slide (still or with Ken Burns motion) or a b-roll clip (its own sound
muted: the voice carries the scene). Scene i lasts `lead + voice + pad`, plus the crossfade
into the next scene, so a transition never starts while the voice is still speaking.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from shorts_pipeline.render.geometry import FPS
from shorts_pipeline.render.probe import MediaInfo
from shorts_pipeline.render.timeline import (
    ClipSegment,
    EncoderSettings,
    FitMode,
    Motion,
    Segment,
    StillSegment,
    Timeline,
    VoiceCue,
)

LEAD_SECONDS = 0.15  # a breath between a scene's first frame and its first word
TAIL_SECONDS = 0.6  # the last scene holds a little after the last word
MIN_SCENE_SECONDS = 1.5  # a scene with nothing to say still shows its visual this long


@dataclass(frozen=True)
class ExplainerScene:
    voice: str | None  # the scene's narration (WAV), None when it says nothing
    voice_seconds: float  # its measured length
    still: str | None = None  # a full-frame slide…
    clip: MediaInfo | None = None  # …or a b-roll clip
    clip_start: float = 0.0
    motion: Motion = "none"
    min_seconds: float = 0.0  # the script's own duration for the scene, if it set one


def scene_crossfade(transition: str, transition_seconds: float, fps: int = FPS) -> float:
    """The overlap between scenes, in whole frames (0 without transitions)."""
    if transition == "none":
        return 0.0
    return math.floor(max(0.0, transition_seconds) * fps) / fps


def explainer_timeline(
    scenes: Sequence[ExplainerScene],
    *,
    pad: float = 0.4,
    fit: FitMode = "cover",
    transition: str = "fade",
    transition_seconds: float = 0.4,
    music: str | None = None,
    music_db: float = -16.0,
    duck_db: float = -12.0,
    encoder: EncoderSettings | None = None,
) -> Timeline:
    """Scenes in order, each timed to its narration; the voice cues placed on the timeline."""
    if not scenes:
        raise ValueError("an explainer needs at least one scene")
    overlap = scene_crossfade(transition, transition_seconds) if len(scenes) > 1 else 0.0
    segments: list[Segment] = []
    voice: list[VoiceCue] = []
    start = 0.0
    for i, scene in enumerate(scenes):
        last = i == len(scenes) - 1
        spoken = LEAD_SECONDS + scene.voice_seconds + (TAIL_SECONDS if last else pad)
        seconds = max(spoken, scene.min_seconds, MIN_SCENE_SECONDS)
        seconds += 0.0 if last else overlap
        seconds = math.ceil(seconds * FPS) / FPS  # whole frames keep cuts on frame edges
        if scene.clip is not None:
            segments.append(ClipSegment(scene.clip, scene.clip_start, seconds, audio=False))
        elif scene.still is not None:
            segments.append(StillSegment(scene.still, seconds, motion=scene.motion))
        else:
            raise ValueError(f"scene {i + 1} has neither a slide nor a clip")
        if scene.voice is not None and scene.voice_seconds > 0:
            voice.append(VoiceCue(scene.voice, start + LEAD_SECONDS, scene.voice_seconds))
        start += seconds - overlap
    return Timeline(
        segments=segments,
        fit=fit,
        transition=transition if overlap > 0 else "none",
        transition_seconds=overlap,
        music=music,
        music_db=music_db,
        voice=voice,
        duck_db=duck_db,
        encoder=encoder or EncoderSettings(),
    )
