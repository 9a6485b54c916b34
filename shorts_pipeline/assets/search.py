"""search_results: the clips the project's source found for its keywords."""

import dagster as dg
import pandas as pd

from shorts_pipeline.assets.common import (
    OWNERS,
    clip_source_for,
    markdown_table,
    metadata_table,
    project_of,
    search_clips,
)
from shorts_pipeline.models import ClipCandidate, ProjectFormat
from shorts_pipeline.partitions import project_partitions
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.clip_sources import ClipSourceError, LocalLibrarySource
from shorts_pipeline.resources.ytdlp_source import YtDlpSource
from shorts_pipeline.scoring import rank_candidates

COLUMNS = list(ClipCandidate.model_fields)
SEARCH_LIMIT = 50


@dg.asset(
    partitions_def=project_partitions,
    group_name="production",
    kinds={"pandas", "python"},
    owners=OWNERS,
)
def search_results(
    context: dg.AssetExecutionContext,
    catalog: CatalogResource,
    library: LocalLibrarySource,
    ytdlp: YtDlpSource,
) -> dg.MaterializeResult[pd.DataFrame]:
    """Candidate clips for the project, as a DataFrame (id, source, url, title, duration,
    width, height, views, likes, published, thumbnail, tags): a keyword search of the local
    library or YouTube, or the project's own video, playlist and channel URLs (yt-dlp; metadata
    only, nothing is downloaded here). Items the source cannot use (live streams, over-long
    videos, broken files) are listed with the reason. For an explainer these are its b-roll
    candidates; finding none is not an error (its scenes become slides)."""
    project = project_of(context, catalog)
    if project.format is ProjectFormat.extend:
        return _empty("extend videos are generated, not made of found clips")
    explainer = project.format is ProjectFormat.explainer
    if explainer and not project.settings.broll:
        return _empty("b-roll is off for this project (settings.broll): every scene is a slide")
    source = clip_source_for(project, library, ytdlp)
    try:
        outcome = search_clips(project, source, SEARCH_LIMIT)
    except ClipSourceError as err:
        if not explainer:
            raise dg.Failure(description=str(err), allow_retries=False) from err
        # An explainer does without b-roll: its scenes become slides. Say so, don't fail.
        context.log.warning(f"no b-roll for {project.key}: {err}")
        return _empty(f"no b-roll: {err}")
    for item, reason in outcome.skipped:
        context.log.warning(f"skipped {item}: {reason}")
    frame = pd.DataFrame([c.model_dump() for c in outcome.candidates], columns=COLUMNS)
    # The score automatic ranking would give each one (explainers pick b-roll by words).
    scored = rank_candidates(outcome.candidates, min_seconds=project.settings.clip_min_seconds)
    scores = {s.candidate.id: s for s in scored}
    return dg.MaterializeResult(
        value=frame,
        metadata={
            "count": len(frame),
            "terms": ", ".join(project.search_terms),
            "source": source.name,
            "candidates": metadata_table(
                CANDIDATE_COLUMNS,
                (
                    {
                        "id": c.id,
                        "title": c.title,
                        "source": c.source,
                        "duration_s": round(c.duration, 2) if c.duration else None,
                        "size": f"{c.width}x{c.height}" if c.width and c.height else None,
                        "views": c.views,
                        "likes": c.likes,
                        "published": c.published.date().isoformat() if c.published else None,
                        "score": scores[c.id].score,
                        "duplicate_of": scores[c.id].duplicate_of,
                        "url": c.url,
                        "thumbnail": c.thumbnail,
                    }
                    for c in outcome.candidates
                ),
            ),
            "skipped": dg.MetadataValue.md(
                markdown_table(["file", "reason"], outcome.skipped) if outcome.skipped else "none"
            ),
        },
    )


CANDIDATE_COLUMNS = [
    ("id", "string", "the clip's id at its source"),
    ("title", "string", None),
    ("source", "string", "library, or ytdlp:<site>"),
    ("duration_s", "float", None),
    ("size", "string", "width x height as shown"),
    ("views", "int", None),
    ("likes", "int", None),
    ("published", "string", "date"),
    ("score", "float", "automatic ranking score (views, likes, recency, duration fit)"),
    ("duplicate_of", "string", "a near-duplicate of this clip, which ranks higher"),
    ("url", "string", "where the clip is"),
    ("thumbnail", "string", "thumbnail URL, when the source has one"),
]


def _empty(reason: str) -> dg.MaterializeResult[pd.DataFrame]:
    return dg.MaterializeResult(
        value=pd.DataFrame([], columns=COLUMNS),
        metadata={"count": 0, "skipped_reason": reason},
    )
