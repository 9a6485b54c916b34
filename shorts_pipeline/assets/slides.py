"""slides: every image the video needs, drawn with Pillow."""

import re
import shutil
import tempfile
from pathlib import Path

import dagster as dg

from shorts_pipeline.assets.common import OWNERS, image_markdown, project_media_key, project_of
from shorts_pipeline.home import cache_dir
from shorts_pipeline.models import Selections, SlideSet
from shorts_pipeline.partitions import project_partitions
from shorts_pipeline.render.cards import (
    contact_sheet,
    draw_outro_card,
    draw_rank_badge,
    draw_title_card,
)
from shorts_pipeline.resources.catalog import CatalogResource
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
    catalog: CatalogResource,
    media_store: MediaStoreResource,
) -> dg.MaterializeResult[SlideSet]:
    """The title card ("Top N" and the title), one rank badge per clip (#N..#1 with the clip's
    title) and the outro card, drawn with real fonts (Hangul, emoji) inside the Shorts safe
    area. Badges are small transparent PNGs placed on the frame; cards are full frames."""
    project = project_of(context, catalog)
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
