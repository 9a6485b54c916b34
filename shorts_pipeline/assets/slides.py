"""slides: every image the video needs, drawn with Pillow."""

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import dagster as dg
from PIL import Image

from shorts_pipeline.assets import reuse
from shorts_pipeline.assets.common import (
    OWNERS,
    image_markdown,
    markdown_table,
    project_media_key,
    project_of,
)
from shorts_pipeline.home import cache_dir
from shorts_pipeline.models import (
    OUTPUT_SIZES,
    Narration,
    ProjectFormat,
    ProjectSpec,
    SceneVisual,
    ScriptScene,
    SelectedClip,
    Selections,
    SlideSet,
    VideoScript,
)
from shorts_pipeline.partitions import project_partitions
from shorts_pipeline.render.cards import (
    CHAPTER_ACCENTS,
    contact_sheet,
    draw_outro_card,
    draw_rank_badge,
    draw_scene_slide,
    draw_title_card,
)
from shorts_pipeline.render.explainer import LEAD_SECONDS, scene_crossfade
from shorts_pipeline.render.speech_text import spoken_text
from shorts_pipeline.render.storyboard import draw_storyboard_caption
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.llm import speaking_seconds
from shorts_pipeline.resources.media_store import MediaStoreResource


@dg.asset(
    partitions_def=project_partitions,
    group_name="production",
    kinds={"pillow", "png"},
    owners=OWNERS,
)
def slides(
    context: dg.AssetExecutionContext,
    selections: Selections,
    script: VideoScript,
    narration: Narration,
    catalog: CatalogResource,
    media_store: MediaStoreResource,
) -> dg.MaterializeResult[SlideSet]:
    """Every image the video needs, drawn with real fonts (Hangul, emoji) inside the Shorts
    safe area. Ranking: the title card ("Top N" and the title), one rank badge per clip (#N..#1
    with the clip's title; small transparent PNGs placed on the frame) and the outro card.
    Explainer: one visual per scene — a b-roll clip from the pool whose title or tags match the
    scene's keywords and that is long enough (never the same clip twice), else a slide with
    the chapter and the scene's on-screen text."""
    project = project_of(context, catalog)
    record_key = project_media_key(project, "slides", RECORD_NAME)
    made_from = slides_fingerprint(project, selections, script, narration)
    earlier = _reusable(media_store, record_key, made_from)
    if earlier is not None:
        context.log.info("nothing the slides are drawn from has changed: reusing them")
        value, metadata = earlier
    else:
        # The files are about to be replaced: no record may describe them until the new one
        # is written, last.
        reuse.forget_record(media_store, record_key)
        if project.format is ProjectFormat.explainer:
            value, metadata = _explainer_slides(
                context, project, selections, script, narration, media_store
            )
        elif project.format is ProjectFormat.extend:
            value, metadata = _extend_slides(project, script, media_store)
        else:
            value, metadata = _ranking_slides(project, selections, media_store)
        reuse.save_record(
            media_store,
            record_key,
            {
                "fingerprint": made_from,
                "value": value.model_dump(mode="json"),
                "metadata": reuse.encode_metadata(metadata),
                "digests": _digests(media_store, value),
            },
        )
    if value.contact_sheet:
        # Not kept in the record: a presigned S3 URL expires.
        metadata["contact_sheet_url"] = dg.MetadataValue.url(
            media_store.url_for(value.contact_sheet)
        )
    return dg.MaterializeResult(value=value, metadata={**metadata, "reused": earlier is not None})


RECORD_NAME = "slides.reuse.json"
SHEET_PREVIEW_WIDTH = 360  # pixels of the contact sheet shown in the UI (a few KB of JPEG)
# The code that decides and draws the images: the render engine (cards, text, storyboard
# captions, timings), this module, and the speech estimate of scenes without narration.
SLIDES_CODE = (
    "shorts_pipeline.render",
    "shorts_pipeline.assets.slides",
    "shorts_pipeline.resources.llm",
)

Metadata = dict[str, Any]


def slides_fingerprint(
    project: ProjectSpec, selections: Selections, script: VideoScript, narration: Narration
) -> str:
    """Everything the images depend on: the project's title, format and settings, the chosen
    clips, the script, each scene's spoken length, the fonts and the drawing code."""
    # A ranking's badges show only each clip's rank and title (its score moves with time).
    ranking = project.format is ProjectFormat.ranking
    clips = (
        [(c.rank, c.candidate.id, c.candidate.title) for c in selections.clips]
        if ranking
        else selections.clips
    )
    return reuse.fingerprint(
        "slides",
        [project.key, project.title, project.format, project.settings],
        clips,
        script,
        [(s.index, s.duration) for s in narration.scenes],
        reuse.code_version(*SLIDES_CODE),
        reuse.fonts_identity(),
    )


def _reusable(
    media_store: MediaStoreResource, record_key: str, fingerprint: str
) -> tuple[SlideSet, Metadata] | None:
    """The slides drawn before, when they were drawn from the same inputs and every image is
    still in the store; else None."""
    record = reuse.load_record(media_store, record_key)
    if record is None or record.get("fingerprint") != fingerprint:
        return None
    try:
        value = SlideSet.model_validate(record["value"])
        metadata = reuse.decode_metadata(record["metadata"])
    except (KeyError, TypeError, ValueError):
        return None
    if not reuse.all_stored(media_store, [v.media_key for v in value.scenes]):
        return None  # a b-roll clip has gone from the store
    drawn = _drawn(value)
    if not reuse.all_stored(media_store, drawn):
        return None
    if media_store.is_local and record.get("digests") != _digests(media_store, value):
        return None  # an image was changed by hand
    return value, metadata


def _drawn(value: SlideSet) -> list[str]:
    """The media keys of every image the slides stage drew."""
    keys = [
        value.title_card,
        value.outro_card,
        value.contact_sheet,
        *value.badges.values(),
        *value.captions.values(),
        *(v.media_key for v in value.scenes if v.kind == "slide"),
    ]
    return [k for k in keys if k]


def _digests(media_store: MediaStoreResource, value: SlideSet) -> dict[str, str] | None:
    """Each drawn image's content digest, on a local store (None on a remote one)."""
    if not media_store.is_local:
        return None
    return {k: reuse.file_digest(media_store.local_path(k)) for k in _drawn(value)}


def _ranking_slides(
    project: ProjectSpec, selections: Selections, media_store: MediaStoreResource
) -> tuple[SlideSet, Metadata]:
    count = len(selections.clips)
    scratch = Path(tempfile.mkdtemp(prefix="slides-", dir=cache_dir()))
    try:
        # "Top N" as a kicker, unless the title already says it.
        kicker = None if re.search(r"\btop\s*\d+", project.title, re.I) else f"Top {count}"
        title_png = draw_title_card(scratch / "title.png", project.title, subtitle=kicker)
        outro_png = draw_outro_card(scratch / "outro.png", project.title)
        badges: dict[int, str] = {}
        boxes: dict[int, tuple[int, int, int, int]] = {}
        local_badges = []
        for clip in selections.clips:
            overlay = draw_rank_badge(
                scratch / f"badge-{clip.rank}.png", clip.rank, clip.candidate.title
            )
            key = project_media_key(project, "slides", f"badge-{clip.rank}.png")
            badges[clip.rank] = media_store.put(overlay.path, key)
            boxes[clip.rank] = (overlay.x, overlay.y, overlay.width, overlay.height)
            local_badges.append(overlay.path)
        sheet = contact_sheet([title_png, *local_badges, outro_png], scratch / "sheet.jpg")
        slide_set = SlideSet(
            project_key=project.key,
            title_card=media_store.put(
                title_png, project_media_key(project, "slides", "title.png")
            ),
            outro_card=media_store.put(
                outro_png, project_media_key(project, "slides", "outro.png")
            ),
            badges=badges,
            badge_boxes=boxes,
            contact_sheet=media_store.put(sheet, project_media_key(project, "slides", "sheet.jpg")),
        )
        preview = image_markdown(sheet, max_width=SHEET_PREVIEW_WIDTH)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return slide_set, {
        "images": 2 + len(badges),
        "contact_sheet": dg.MetadataValue.md(preview),
        "badge_boxes": dg.MetadataValue.json({f"#{k}": list(v) for k, v in boxes.items()}),
    }


def _explainer_slides(
    context: dg.AssetExecutionContext,
    project: ProjectSpec,
    selections: Selections,
    script: VideoScript,
    narration: Narration,
    media_store: MediaStoreResource,
) -> tuple[SlideSet, Metadata]:
    settings = project.settings
    scenes = script.scene_chapters()
    audio = {s.index: s.duration for s in narration.scenes}
    overlap = scene_crossfade(settings.transition, settings.transition_seconds)
    used: set[str] = set()
    visuals: list[SceneVisual] = []
    rows = []
    scratch = Path(tempfile.mkdtemp(prefix="slides-", dir=cache_dir()))
    try:
        local_slides = []
        for index, (chapter_index, chapter, scene) in enumerate(scenes):
            spoken = audio.get(index)
            if spoken is None:  # no narration: the scene lasts as long as reading it would
                spoken = speaking_seconds(spoken_text(scene.narration), script.language)
            need = max(scene.duration or 0.0, LEAD_SECONDS + spoken + settings.scene_pad_seconds)
            need += overlap
            clip = _broll_for(scene, selections.clips, used, need) if settings.broll else None
            if clip is not None:
                used.add(clip.candidate.id)
                visuals.append(
                    SceneVisual(
                        index=index,
                        kind="broll",
                        media_key=clip.media_key,
                        clip_id=clip.candidate.id,
                        clip_start=_broll_start(clip, need),
                    )
                )
                rows.append([index + 1, "b-roll", clip.candidate.title, f"{need:.1f} s"])
                continue
            name = f"scene-{index + 1:02d}.png"
            png = draw_scene_slide(
                scratch / name,
                scene.on_screen_text or spoken_text(scene.narration),
                chapter=chapter.title if len(script.chapters) > 1 or chapter.title else None,
                index=index + 1,
                total=len(scenes),
                accent=CHAPTER_ACCENTS[chapter_index % len(CHAPTER_ACCENTS)],
                background=settings.slide_background,
            )
            local_slides.append(png)
            key = media_store.put(png, project_media_key(project, "slides", name))
            visuals.append(SceneVisual(index=index, kind="slide", media_key=key))
            rows.append([index + 1, "slide", scene.on_screen_text, f"{need:.1f} s"])
        sheet_key, preview = None, "no slides: every scene shows b-roll"
        if local_slides:
            sheet = contact_sheet(local_slides, scratch / "sheet.jpg")
            sheet_key = media_store.put(sheet, project_media_key(project, "slides", "sheet.jpg"))
            preview = image_markdown(sheet, max_width=SHEET_PREVIEW_WIDTH)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    slide_set = SlideSet(project_key=project.key, scenes=visuals, contact_sheet=sheet_key)
    metadata: Metadata = {
        "images": sum(v.kind == "slide" for v in visuals),
        "broll_scenes": sum(v.kind == "broll" for v in visuals),
        "style": settings.slide_style,
        "contact_sheet": dg.MetadataValue.md(preview),
        "scenes": dg.MetadataValue.md(markdown_table(["#", "visual", "shows", "length"], rows)),
    }
    return slide_set, metadata


def _broll_for(
    scene: ScriptScene, pool: list[SelectedClip], used: set[str], seconds: float
) -> SelectedClip | None:
    """The unused clip whose title and tags share the most words with the scene's b-roll
    keywords, among those long enough to cover the scene; None when nothing matches."""
    wanted = _words(" ".join(scene.broll_keywords))
    if not wanted:
        return None
    best: tuple[int, float, SelectedClip] | None = None
    for clip in pool:
        if clip.candidate.id in used or clip.duration < seconds:
            continue
        have = _words(" ".join([clip.candidate.title, *clip.candidate.tags]))
        hits = len(wanted & have)
        if hits and (best is None or (hits, clip.score) > (best[0], best[1])):
            best = (hits, clip.score, clip)
    return best[2] if best else None


def _broll_start(clip: SelectedClip, seconds: float) -> float:
    """Where the scene's stretch of the clip starts: the middle, which is usually the action."""
    return round(max(0.0, (clip.duration - seconds) / 2), 3)


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text.casefold()) if len(w) > 1}


def _extend_slides(
    project: ProjectSpec, script: VideoScript, media_store: MediaStoreResource
) -> tuple[SlideSet, Metadata]:
    """Extend videos show only their segments; a storyboard labels each one with its number
    and planned action, so nobody mistakes the preview for the generated video."""
    if project.settings.extend.provider != "storyboard" or script.plan is None:
        record = SlideSet(
            project_key=project.key, skipped_reason="generated segments need no slides"
        )
        return record, {"skipped": record.skipped_reason}
    width, height = OUTPUT_SIZES[project.settings.extend.aspect]
    # Narrated storyboards keep the bottom for the subtitles.
    spoken = project.settings.narration and project.settings.subtitles.enabled
    position: Literal["top", "bottom"] = "top" if spoken else "bottom"
    count = len(script.plan.segments)
    captions: dict[int, str] = {}
    boxes: dict[int, tuple[int, int, int, int]] = {}
    scratch = Path(tempfile.mkdtemp(prefix="slides-", dir=cache_dir()))
    try:
        local = []
        for k, segment in enumerate(script.plan.segments):
            path, x, y = draw_storyboard_caption(
                scratch / f"caption-{k + 1:02d}.png",
                prompt=segment.action,
                index=k,
                count=count,
                width=width,
                height=height,
                position=position,
            )
            with Image.open(path) as img:
                w, h = img.size
            key = project_media_key(project, "slides", f"caption-{k + 1:02d}.png")
            captions[k] = media_store.put(path, key)
            boxes[k] = (x, y, w, h)
            local.append(path)
        sheet = contact_sheet(local, scratch / "sheet.jpg")
        record = SlideSet(
            project_key=project.key,
            captions=captions,
            caption_boxes=boxes,
            contact_sheet=media_store.put(sheet, project_media_key(project, "slides", "sheet.jpg")),
        )
        preview = image_markdown(sheet, max_width=SHEET_PREVIEW_WIDTH)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return record, {
        "images": len(captions),
        "storyboard_captions": dg.MetadataValue.md(preview),
        "caption_position": position,
    }
