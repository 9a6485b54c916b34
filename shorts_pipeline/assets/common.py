"""What every stage shares: the project partition, media keys and UI previews."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from pathlib import Path

import dagster as dg
from PIL import Image

from shorts_pipeline.models import ProjectFormat, ProjectSpec
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.clip_sources import LocalLibrarySource

OWNERS = ["team:shorts"]


def project_of(context: dg.AssetExecutionContext, catalog: CatalogResource) -> ProjectSpec:
    return catalog.get_project(context.partition_key)


def clip_source_for(project: ProjectSpec, library: LocalLibrarySource) -> LocalLibrarySource:
    """The project's own library folder when it names one, else the configured library."""
    if project.settings.library:
        return LocalLibrarySource(directory=project.settings.library)
    return library


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


def image_markdown(path: str | Path, max_width: int = 120, quality: int = 60) -> str:
    """A small inline JPEG for the Dagster UI (MetadataValue has no image type)."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        img.thumbnail((max_width, max_width * 2))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality, optimize=True)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"![preview](data:image/jpeg;base64,{data})"


def markdown_table(headers: list[str], rows: Iterable[Iterable[object]]) -> str:
    def cell(v: object) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
