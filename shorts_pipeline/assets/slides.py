"""slides: every image the video needs, drawn with Pillow."""

import re
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import dagster as dg
from PIL import Image

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
    if project.format is ProjectFormat.explainer:
        return _explainer_slides(context, project, selections, script, narration, media_store)
    if project.format is ProjectFormat.extend:
        return _extend_slides(project, script, media_store)
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
        preview = image_markdown(sheet, max_width=360, quality=55)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return dg.MaterializeResult(
        value=slide_set,
        metadata={
            "images": 2 + len(badges),
            "contact_sheet": dg.MetadataValue.md(preview),
            "badge_boxes": dg.MetadataValue.json({f"#{k}": list(v) for k, v in boxes.items()}),
        },
    )


def _explainer_slides(
    context: dg.AssetExecutionContext,
    project: ProjectSpec,
    selections: Selections,
    script: VideoScript,
    narration: Narration,
    media_store: MediaStoreResource,
) -> dg.MaterializeResult[SlideSet]:
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
            preview = image_markdown(sheet, max_width=360, quality=55)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    slide_set = SlideSet(project_key=project.key, scenes=visuals, contact_sheet=sheet_key)
    return dg.MaterializeResult(
        value=slide_set,
        metadata={
            "images": sum(v.kind == "slide" for v in visuals),
            "broll_scenes": sum(v.kind == "broll" for v in visuals),
            "style": settings.slide_style,
            "contact_sheet": dg.MetadataValue.md(preview),
            "scenes": dg.MetadataValue.md(markdown_table(["#", "visual", "shows", "length"], rows)),
        },
    )


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
) -> dg.MaterializeResult[SlideSet]:
    """Extend videos show only their segments; a storyboard labels each one with its number
    and planned action, so nobody mistakes the preview for the generated video."""
    if project.settings.extend.provider != "storyboard" or script.plan is None:
        record = SlideSet(
            project_key=project.key, skipped_reason="generated segments need no slides"
        )
        return dg.MaterializeResult(value=record, metadata={"skipped": record.skipped_reason})
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
        preview = image_markdown(sheet, max_width=360, quality=55)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return dg.MaterializeResult(
        value=record,
        metadata={
            "images": len(captions),
            "storyboard_captions": dg.MetadataValue.md(preview),
            "caption_position": position,
        },
    )
