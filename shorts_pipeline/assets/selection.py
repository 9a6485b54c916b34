"""selections: the clips the video will show, in order, downloaded and probed."""

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import dagster as dg
import pandas as pd

from shorts_pipeline.assets import reuse
from shorts_pipeline.assets.common import (
    OWNERS,
    clip_source_for,
    markdown_table,
    metadata_table,
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
from shorts_pipeline.render.probe import MediaInfo
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
    unchanged = 0  # library clips stored and probed before, whose files have not changed
    for candidate in queue:
        if len(chosen) >= wanted:
            break
        try:
            media_key, info, known = _fetch_and_probe(candidate, source, media_store)
        except NetworkUnavailableError as err:
            # Every other candidate would fail the same way: stop with the advice.
            raise dg.Failure(description=str(err)) from err
        except (ClipSourceError, ProbeError, OSError) as err:
            reason = err.reason if isinstance(err, ProbeError) else str(err)
            context.log.warning(f"clip {candidate.id} ({candidate.title}) skipped: {reason}")
            skipped.append(SkippedClip(clip_id=candidate.id, title=candidate.title, reason=reason))
            continue
        chosen.append((candidate, media_key, info))
        unchanged += known

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
    return dg.MaterializeResult(
        value=result,
        metadata={
            "count": len(clips),
            "requested": wanted,
            "manual": result.manual,
            "clips_fetched": len(chosen) - unchanged,
            "clips_reused": unchanged,
            "clips": metadata_table(
                SELECTED_COLUMNS,
                (
                    {
                        "rank": c.rank,
                        "id": c.candidate.id,
                        "title": c.candidate.title,
                        "source": c.candidate.source,
                        "views": c.candidate.views,
                        "likes": c.candidate.likes,
                        "score": c.score,
                        "duration_s": round(c.duration, 2),
                        "kept": f"{c.trim_start:.1f}–{c.trim_start + c.trim_seconds:.1f} s",
                        "size": f"{c.display_width}x{c.display_height}",
                        "audio": c.has_audio,
                        "url": c.candidate.url,
                        "thumbnail": c.candidate.thumbnail,
                    }
                    for c in clips
                ),
            ),
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


SELECTED_COLUMNS = [
    ("rank", "int", "#1 is the best"),
    ("id", "string", "the clip's id at its source"),
    ("title", "string", None),
    ("source", "string", "library, or ytdlp:<site>"),
    ("views", "int", None),
    ("likes", "int", None),
    ("score", "float", "automatic ranking score (views, likes, recency, duration fit)"),
    ("duration_s", "float", "the whole clip"),
    ("kept", "string", "the stretch the video shows"),
    ("size", "string", "width x height as shown"),
    ("audio", "bool", "has its own sound"),
    ("url", "string", "where the clip came from"),
    ("thumbnail", "string", "thumbnail URL, when the source has one"),
]


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
) -> tuple[str, MediaInfo, bool]:
    """Fetch into scratch, probe, then keep it in the store under its content hash; say
    whether it was known already.

    A library clip whose file is unchanged since it was last stored (same path, size, mtime,
    inode) is not copied, hashed or probed again; any fetched file already probed (same
    content) is not probed again."""
    known = _known_library_clip(candidate, source, store)
    if known is not None:
        return (*known, True)
    scratch = Path(tempfile.mkdtemp(prefix="fetch-", dir=cache_dir()))
    try:
        local = source.fetch(candidate, scratch)
        digest = reuse.content_digest(local)
        info = reuse.probe_cached(local, check_tail=True, digest=digest)
        key = f"clips/{digest[:20]}{local.suffix.lower()}"
        if not store.exists(key):
            store.put(local, key)
        # Where a downloaded clip came from (URL, uploader, licence) travels with it.
        sidecar = local.with_name(local.name + ".info.json")
        if sidecar.is_file() and not store.exists(f"{key}.info.json"):
            store.put(sidecar, f"{key}.info.json")
        _remember_library_clip(candidate, source, key, info)
        return key, info, False
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _library_file(
    candidate: ClipCandidate, source: LocalLibrarySource | YtDlpSource
) -> Path | None:
    """The file a library candidate names, if it lies directly in the source's library."""
    if not isinstance(source, LocalLibrarySource):
        return None
    parts = urlsplit(candidate.url)
    if parts.scheme != "file":
        return None
    path = Path(url2pathname(parts.path))
    library = source.path.resolve()
    return path if path.parent.resolve() == library and path.is_file() else None


def _library_slot(candidate: ClipCandidate, file: Path) -> Path:
    tag = reuse.fingerprint(
        "library-clip",
        candidate.id,
        os.path.realpath(file),
        reuse.stat_tag(file),
        reuse.code_version("shorts_pipeline.render.probe"),
    )
    return cache_dir() / "reuse" / "clips" / f"{tag[:32]}.json"


def _known_library_clip(
    candidate: ClipCandidate, source: LocalLibrarySource | YtDlpSource, store: MediaStoreResource
) -> tuple[str, MediaInfo] | None:
    file = _library_file(candidate, source)
    if file is None or not reuse.reuse_enabled():
        return None
    try:
        data = json.loads(_library_slot(candidate, file).read_text())
        key, info = data["media_key"], reuse.media_info_from_json(data["info"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return (key, info) if store.exists(key) else None


def _remember_library_clip(
    candidate: ClipCandidate,
    source: LocalLibrarySource | YtDlpSource,
    key: str,
    info: MediaInfo,
) -> None:
    file = _library_file(candidate, source)
    if file is not None:
        data = {"media_key": key, "info": reuse.media_info_to_json(info)}
        reuse.write_cache_entry(_library_slot(candidate, file), json.dumps(data))


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
