"""What every stage shares: the project partition, media keys and UI previews."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

import dagster as dg
from PIL import Image

from shorts_pipeline.models import ProjectFormat, ProjectSpec
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.clip_sources import (
    ClipSourceError,
    LocalLibrarySource,
    SearchOutcome,
)
from shorts_pipeline.resources.ytdlp_source import YtDlpSource

OWNERS = ["team:shorts"]
# Where `shorts serve` shows a project (its video, script and checks) to a person.
DEFAULT_PREVIEW_URL = "http://127.0.0.1:8700"
# Inline previews live in the event log with every materialisation: a few KB each.
PREVIEW_MAX_BYTES = 6_000


def project_of(context: dg.AssetExecutionContext, catalog: CatalogResource) -> ProjectSpec:
    return catalog.get_project(context.partition_key)


def clip_source_for(
    project: ProjectSpec, library: LocalLibrarySource, ytdlp: YtDlpSource
) -> LocalLibrarySource | YtDlpSource:
    """Where the project's clips come from: yt-dlp for URLs or a YouTube search, else the
    project's own library folder, else the configured library."""
    settings = project.settings
    if settings.urls or settings.search_source in ("youtube", "tiktok"):
        return ytdlp
    if settings.library:
        return LocalLibrarySource(directory=settings.library)
    return library


def search_clips(
    project: ProjectSpec, source: LocalLibrarySource | YtDlpSource, limit: int
) -> SearchOutcome:
    """Run the project's search: its URLs when it has them, else its keywords."""
    settings = project.settings
    if isinstance(source, YtDlpSource):
        if settings.urls:
            return source.search_urls(settings.urls, limit=limit)
        if settings.search_source == "tiktok":
            raise ClipSourceError(
                "TikTok has no keyword search in yt-dlp: give the project TikTok URLs "
                "(`shorts add --search-source tiktok --url URL ...`)"
            )
    return source.search(project.search_terms, limit=limit)


def project_media_key(project: ProjectSpec, *parts: str) -> str:
    return "/".join(["projects", project.key, *parts])


def require_format(project: ProjectSpec, *formats: ProjectFormat) -> None:
    if project.format not in formats:
        raise dg.Failure(
            description=(
                f"project {project.key} has format {project.format.value!r}, which this version "
                f"cannot render yet (supported: {', '.join(f.value for f in formats)})"
            ),
            allow_retries=False,
        )


def image_markdown(
    path: str | Path, max_width: int = 120, quality: int = 60, max_bytes: int = PREVIEW_MAX_BYTES
) -> str:
    """A small inline JPEG for the Dagster UI (MetadataValue has no image type), at most
    `max_bytes` of JPEG (lower quality first, then smaller) so the event log stays small."""
    with Image.open(path) as source:
        source.draft("RGB", (max_width, max_width * 2))  # a JPEG decodes at a fraction of its size
        img = source.convert("RGB")
    img.thumbnail((max_width, max_width * 2))
    while True:
        for q in (quality, 45, 30):
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=q, optimize=True)
            if buf.tell() <= max_bytes:
                break
        if buf.tell() <= max_bytes or img.width <= 48:
            break
        img = img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.Resampling.LANCZOS)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"![preview](data:image/jpeg;base64,{data})"


def preview_url(project_key: str) -> str:
    """The project's page on the preview server (`shorts serve`): SHORTS_PREVIEW_URL, else
    http://127.0.0.1:8700, then /projects/<key>."""
    base = (os.environ.get("SHORTS_PREVIEW_URL") or DEFAULT_PREVIEW_URL).rstrip("/")
    return f"{base}/projects/{quote(project_key, safe='')}"


TableValue = str | int | float | bool | None


def metadata_table(
    columns: list[tuple[str, str, str | None]], rows: Iterable[dict[str, TableValue]]
) -> dg.TableMetadataValue:
    """A table for the Dagster UI: `columns` as (name, type, description), type one of
    string, int, float, bool; each row a dict by column name."""
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, kind, description=about) for name, kind, about in columns]
    )
    names = [name for name, _, _ in columns]
    return dg.MetadataValue.table(
        [dg.TableRecord({n: row.get(n) for n in names}) for row in rows], schema=schema
    )


def markdown_table(headers: list[str], rows: Iterable[Iterable[object]]) -> str:
    def cell(v: object) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
