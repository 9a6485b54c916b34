"""selections: the clips the video will show, in order, downloaded and probed."""

import hashlib
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import pandas as pd

from shorts_pipeline.assets.common import (
    OWNERS,
    clip_source_for,
    markdown_table,
    project_of,
)
from shorts_pipeline.home import cache_dir
from shorts_pipeline.models import (
    ClipCandidate,
    ProjectFormat,
    ProjectSettings,
    SelectedClip,
    Selections,
    SkippedClip,
)
from shorts_pipeline.partitions import project_partitions
from shorts_pipeline.render.errors import ProbeError
from shorts_pipeline.render.probe import MediaInfo, probe_clip
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.clip_sources import ClipSourceError, LocalLibrarySource
from shorts_pipeline.resources.media_store import MediaStoreResource
from shorts_pipeline.resources.ytdlp_source import NetworkUnavailableError, YtDlpSource
from shorts_pipeline.scoring import clip_seconds_budget, rank_candidates

SELECTION_CHECKS = [
    dg.AssetCheckSpec(
        "selected_clips_decodable",
        asset="selections",
        blocking=True,
        description="Every selected clip is in the media store and was probed and decoded to "
        "its last second; clips that were not are replaced by the next candidate first.",
    )
]


class SelectionConfig(dg.Config):
    """Run config: fix the clips and their ranking for this run only (first id is #1)."""

    clip_ids: list[str] = []  # noqa: RUF012 (dg.Config is pydantic: defaults are copied)


@dg.asset(
    partitions_def=project_partitions,
    group_name="production",
    kinds={"python", "ffmpeg"},
    owners=OWNERS,
    check_specs=SELECTION_CHECKS,
)
def selections(
    context: dg.AssetExecutionContext,
    config: SelectionConfig,
    search_results: pd.DataFrame,
    catalog: CatalogResource,
    media_store: MediaStoreResource,
    library: LocalLibrarySource,
    ytdlp: YtDlpSource,
):  # untyped: with check_specs, Dagster reads a return annotation as output types
    """The chosen clips in ranking order (#1 is the best), each downloaded into the media
    store (cached by content) and probed. Automatic ranking scores views, likes, recency and
    duration fit and drops near-duplicates; clip ids fixed with `shorts select` or run config
    win. A clip that cannot be downloaded or probed is replaced by the next candidate and the
    reason is recorded."""
    project = project_of(context, catalog)
    settings = project.settings
    explainer = project.format is ProjectFormat.explainer
    if project.format is ProjectFormat.extend or (explainer and search_results.empty):
        reason = (
            "extend videos are generated, not made of found clips"
            if project.format is ProjectFormat.extend
            else "no b-roll candidates: scenes use slides"
        )
        return dg.MaterializeResult(
            value=Selections(project_key=project.key, manual=False, clips=[]),
            metadata={"count": 0, "skipped_reason": reason},
            check_results=[decodable_check([], [])],
        )
    candidates = [_candidate(row) for row in search_results.to_dict("records")]
    by_id = {c.id: c for c in candidates}
    manual_ids = config.clip_ids or project.selected_clip_ids or []
    scored = rank_candidates(candidates, min_seconds=settings.clip_min_seconds)
    score_of = {s.candidate.id: s.score for s in scored}
    skipped: list[SkippedClip] = []
    if manual_ids:
        missing = [i for i in manual_ids if i not in by_id]
        if missing:
            raise dg.Failure(
                description=(
                    f"selected clip ids not found in this project's search results: "
                    f"{', '.join(missing)}; `shorts status {project.key}` lists the candidates"
                ),
                allow_retries=False,
            )
        queue = [by_id[i] for i in manual_ids]
        wanted = len(queue)
    else:
        queue = []
        for s in scored:
            if s.duplicate_of:
                skipped.append(
                    SkippedClip(
                        clip_id=s.candidate.id,
                        title=s.candidate.title,
                        reason=f"near-duplicate of {s.duplicate_of}",
                    )
                )
            else:
                queue.append(s.candidate)
        # An explainer keeps a pool of b-roll: one clip at most per scene.
        wanted = settings.script.max_scenes if explainer else settings.count

    source = clip_source_for(project, library, ytdlp)
    chosen: list[tuple[ClipCandidate, str, MediaInfo]] = []
    for candidate in queue:
        if len(chosen) >= wanted:
            break
        try:
            media_key, info = _fetch_and_probe(candidate, source, media_store)
        except NetworkUnavailableError as err:
            # Every other candidate would fail the same way: stop with the advice.
            raise dg.Failure(description=str(err)) from err
        except (ClipSourceError, ProbeError, OSError) as err:
            reason = err.reason if isinstance(err, ProbeError) else str(err)
            context.log.warning(f"clip {candidate.id} ({candidate.title}) skipped: {reason}")
            skipped.append(SkippedClip(clip_id=candidate.id, title=candidate.title, reason=reason))
            continue
        chosen.append((candidate, media_key, info))

    if not chosen and explainer:
        context.log.warning("no usable b-roll clip: every scene will be a slide")
    elif not chosen:
        raise dg.Failure(
            description=(
                f"no usable clip for {project.key}: all {len(queue)} candidates failed "
                f"({'; '.join(f'{s.clip_id}: {s.reason}' for s in skipped[:5])}); "
                "add clips to the library or change the keywords"
            ),
            allow_retries=False,
        )
    if len(chosen) < wanted:
        context.log.warning(
            f"only {len(chosen)} usable clips of the {wanted} requested; the video ranks "
            f"Top {len(chosen)}"
        )

    per_clip = clip_seconds_budget(
        len(chosen),
        max_duration=settings.max_duration,
        title_seconds=settings.title_seconds,
        outro_seconds=settings.outro_seconds,
        transition_seconds=settings.transition_seconds if settings.transition != "none" else 0,
        clip_max_seconds=settings.clip_max_seconds,
    )
    clips = []
    for position, (candidate, media_key, info) in enumerate(chosen):
        # b-roll is trimmed to its scene later; the whole clip stays available.
        trim_seconds = info.duration if explainer else min(per_clip, info.duration)
        clips.append(
            SelectedClip(
                rank=position + 1,
                candidate=candidate,
                score=score_of.get(candidate.id, 0.0),
                media_key=media_key,
                duration=info.duration,
                display_width=info.display_width,
                display_height=info.display_height,
                rotation=info.rotation,
                fps=info.fps,
                has_audio=info.has_audio,
                video_codec=info.video_codec,
                trim_start=_trim_start(settings, info.duration, trim_seconds),
                trim_seconds=round(trim_seconds, 3),
            )
        )
    clips.sort(key=lambda c: c.rank)
    result = Selections(
        project_key=project.key, manual=bool(manual_ids), clips=clips, skipped=skipped
    )
    table = markdown_table(
        ["rank", "id", "title", "score", "views", "source size", "audio", "kept"],
        (
            [
                f"#{c.rank}",
                c.candidate.id,
                c.candidate.title,
                f"{c.score:.3f}",
                c.candidate.views,
                f"{c.display_width}x{c.display_height}",
                "yes" if c.has_audio else "no",
                f"{c.trim_start:.1f}–{c.trim_start + c.trim_seconds:.1f} s",
            ]
            for c in clips
        ),
    )
    return dg.MaterializeResult(
        value=result,
        metadata={
            "count": len(clips),
            "requested": wanted,
            "manual": result.manual,
            "clips": dg.MetadataValue.md(table),
            "skipped": dg.MetadataValue.md(
                markdown_table(
                    ["id", "title", "reason"], ((s.clip_id, s.title, s.reason) for s in skipped)
                )
                if skipped
                else "none"
            ),
        },
        check_results=[
            decodable_check(
                [
                    (c.candidate.id, None if media_store.exists(c.media_key) else "not stored")
                    for c in clips
                ],
                skipped,
            )
        ],
    )


def decodable_check(
    selected: Sequence[tuple[str, str | None]], skipped: Sequence[SkippedClip]
) -> dg.AssetCheckResult:
    """`selected_clips_decodable` from each selected clip's (id, problem or None), with the
    candidates that were replaced because they could not be fetched or decoded."""
    broken = [(clip_id, problem) for clip_id, problem in selected if problem]
    replaced = [s for s in skipped if not s.reason.startswith("near-duplicate")]
    return dg.AssetCheckResult(
        check_name="selected_clips_decodable",
        passed=not broken,
        metadata={
            "selected": len(selected),
            "decodable": len(selected) - len(broken),
            "not_decodable": ", ".join(f"{i}: {p}" for i, p in broken) or "none",
            "replaced_candidates": len(replaced),
        },
    )


def _fetch_and_probe(
    candidate: ClipCandidate,
    source: LocalLibrarySource | YtDlpSource,
    store: MediaStoreResource,
) -> tuple[str, MediaInfo]:
    """Fetch into scratch, probe, then keep it in the store under its content hash."""
    scratch = Path(tempfile.mkdtemp(prefix="fetch-", dir=cache_dir()))
    try:
        local = source.fetch(candidate, scratch)
        info = probe_clip(local)
        digest = _sha256(local)
        key = f"clips/{digest[:20]}{local.suffix.lower()}"
        if not store.exists(key):
            store.put(local, key)
        # Where a downloaded clip came from (URL, uploader, licence) travels with it.
        sidecar = local.with_name(local.name + ".info.json")
        if sidecar.is_file() and not store.exists(f"{key}.info.json"):
            store.put(sidecar, f"{key}.info.json")
        return key, info
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _trim_start(settings: ProjectSettings, duration: float, keep: float) -> float:
    if settings.trim == "middle":
        return round(max(0.0, (duration - keep) / 2), 3)
    return 0.0


def _candidate(row: dict) -> ClipCandidate:
    clean = {k: (None if _is_missing(v) else v) for k, v in row.items()}
    clean["tags"] = list(clean.get("tags") or [])
    return ClipCandidate.model_validate(clean)


def _is_missing(value: object) -> bool:
    if isinstance(value, list | tuple):
        return False
    try:
        return bool(pd.isna(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False
