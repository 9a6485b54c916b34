"""narration: the script spoken, one audio file per scene, with measured word timings."""

import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from shorts_pipeline.assets.common import OWNERS, markdown_table, project_media_key, project_of
from shorts_pipeline.home import cache_dir
from shorts_pipeline.models import Narration, ProjectFormat, SceneAudio, VideoScript
from shorts_pipeline.partitions import project_partitions
from shorts_pipeline.render.audio import join_speech
from shorts_pipeline.render.explainer import LEAD_SECONDS, MIN_SCENE_SECONDS, TAIL_SECONDS
from shorts_pipeline.render.speech_text import spoken_text
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.media_store import MediaStoreResource
from shorts_pipeline.resources.tts import TtsError, TtsResource

VOICE_LEAD = 0.3  # seconds into an extend segment before its line is heard

NARRATION_CHECKS = [
    dg.AssetCheckSpec(
        "narration_fits_plan",
        asset="narration",
        blocking=False,
        description="The measured speech fits the plan: an explainer's narration with its "
        "pauses within settings.max_duration; each extend segment's line within its segment "
        f"(segment seconds less the {VOICE_LEAD} s before the line starts).",
    )
]


@dg.asset(
    partitions_def=project_partitions,
    group_name="production",
    kinds={"espeak", "wav"},
    owners=OWNERS,
    retry_policy=dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL),
    check_specs=NARRATION_CHECKS,
)
def narration(
    context: dg.AssetExecutionContext,
    script: VideoScript,
    catalog: CatalogResource,
    media_store: MediaStoreResource,
    tts: TtsResource,
):  # untyped: with check_specs, Dagster reads a return annotation as output types
    """Every scene spoken by the project's voice engine (espeak-ng offline by default; gTTS or
    OpenAI TTS): one WAV per scene with its measured length and, from espeak-ng, the time of
    every word — what the subtitles are timed to. Synthesis is cached by engine, voice and
    text, so an unchanged scene is never spoken twice. The joined track (scenes with their
    pauses) is kept for listening."""
    project = project_of(context, catalog)
    settings = project.settings
    voice = settings.voice
    language = script.language or settings.language
    if not settings.narration:
        record = Narration(
            project_key=project.key,
            language=language,
            skipped_reason="narration is off for this project (settings.narration)",
        )
        return dg.MaterializeResult(
            value=record,
            metadata={"skipped": record.skipped_reason},
            check_results=[
                dg.AssetCheckResult(
                    check_name="narration_fits_plan",
                    passed=True,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"narrated": False},
                )
            ],
        )

    scenes: list[SceneAudio] = []
    scratch = Path(tempfile.mkdtemp(prefix="narration-", dir=cache_dir()))
    engine_voice = None
    try:
        for index, scene in enumerate(script.scenes()):
            text = spoken_text(scene.narration)
            if not text:
                context.log.warning(f"scene {index + 1} has nothing to say; it is shown silent")
                scenes.append(SceneAudio(index=index, text="", duration=0.0))
                continue
            try:
                speech = tts.synthesize(text, voice, language)
            except TtsError as err:
                raise dg.Failure(
                    description=f"scene {index + 1} could not be spoken: {err}",
                    allow_retries=err.retryable,
                ) from err
            engine_voice = speech.voice
            key = project_media_key(project, "narration", f"scene-{index + 1:02d}.wav")
            scenes.append(
                SceneAudio(
                    index=index,
                    text=text,
                    media_key=media_store.put(speech.path, key),
                    duration=round(speech.duration, 3),
                    words=list(speech.words),
                    cached=speech.cached,
                )
            )
        if not any(s.media_key for s in scenes):
            raise dg.Failure(
                description=f"the script of {project.key} has nothing to say in any scene",
                allow_retries=False,
            )
        total = _spoken_length(project.format, scenes, settings.scene_pad_seconds)
        if project.format is ProjectFormat.explainer and total > settings.max_duration:
            raise dg.Failure(
                description=(
                    f"the narration runs {total:.1f} s with its pauses; the video limit is "
                    f"{settings.max_duration:.0f} s (settings.max_duration). Shorten the script "
                    f"(`shorts script {project.key} --edit FILE`), lower "
                    "settings.script.target_seconds, or speed the voice up (settings.voice.speed)"
                ),
                allow_retries=False,
            )
        # The joined track is named by what it is made of: an unchanged narration (every
        # scene a cache hit) reuses it instead of encoding it again (~1.6 s a minute).
        digest = hashlib.sha256(
            json.dumps(
                [voice.engine, engine_voice, settings.scene_pad_seconds]
                + [[s.text, s.duration] for s in scenes],
                ensure_ascii=False,
            ).encode()
        ).hexdigest()[:16]
        track_key = project_media_key(project, "narration", f"track-{digest}.m4a")
        if not media_store.exists(track_key):
            track = join_speech(
                [
                    (
                        str(media_store.local_path(s.media_key)) if s.media_key else None,
                        s.duration,
                        settings.scene_pad_seconds,
                    )
                    for s in scenes
                ],
                scratch / "narration.m4a",
            )
            media_store.put(track, track_key)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    record = Narration(
        project_key=project.key,
        engine=voice.engine,
        voice=engine_voice,
        language=language,
        scenes=scenes,
        track_key=track_key,
        duration=round(sum(s.duration for s in scenes), 3),
    )
    table = markdown_table(
        ["#", "seconds", "words timed", "cached", "spoken text"],
        (
            [s.index + 1, f"{s.duration:.2f}", len(s.words), "yes" if s.cached else "no", s.text]
            for s in scenes
        ),
    )
    return dg.MaterializeResult(
        value=record,
        metadata={
            "engine": voice.engine,
            "voice": engine_voice or "",
            "language": language,
            "speech_s": record.duration,
            "scenes": dg.MetadataValue.md(table),
            "cache_hits": sum(s.cached for s in scenes),
            "word_timings": sum(len(s.words) for s in scenes),
            "track": dg.MetadataValue.url(media_store.url_for(track_key)),
        },
        check_results=[
            narration_fit_check(
                project.format,
                scenes,
                pad=settings.scene_pad_seconds,
                max_duration=settings.max_duration,
                segment_seconds=script.plan.seconds
                if script.plan
                else settings.extend.segment_seconds,
            )
        ],
    )


def narration_fit_check(
    fmt: ProjectFormat,
    scenes: Sequence[SceneAudio],
    *,
    pad: float,
    max_duration: float,
    segment_seconds: float,
) -> dg.AssetCheckResult:
    """`narration_fits_plan`: the measured speech against the room the plan gives it."""
    metadata: dict[str, Any] = {"speech_s": round(sum(s.duration for s in scenes), 2)}
    passed = True
    if fmt is ProjectFormat.explainer:
        total = _spoken_length(fmt, list(scenes), pad)
        passed = total <= max_duration
        metadata.update(with_pauses_s=round(total, 2), max_duration_s=max_duration)
    elif fmt is ProjectFormat.extend:
        room = segment_seconds - VOICE_LEAD
        over = [s for s in scenes if s.duration > room]
        passed = not over
        metadata.update(
            room_per_segment_s=round(room, 2),
            longest_line_s=round(max((s.duration for s in scenes), default=0.0), 2),
            too_long=", ".join(f"segment {s.index + 1}: {s.duration:.2f} s" for s in over)
            or "none",
        )
    else:
        metadata["plan"] = "each line is heard over its card or clip; no limit to check"
    return dg.AssetCheckResult(
        check_name="narration_fits_plan",
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


def _spoken_length(fmt: ProjectFormat, scenes: list[SceneAudio], pad: float) -> float:
    """How long an explainer made of these scenes runs (transitions overlap the pads)."""
    if fmt is not ProjectFormat.explainer:
        return sum(s.duration for s in scenes)
    body = sum(max(LEAD_SECONDS + s.duration + pad, MIN_SCENE_SECONDS) for s in scenes)
    return body - pad + TAIL_SECONDS
