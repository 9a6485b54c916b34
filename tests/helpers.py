"""What several test modules share: quick project settings, resources, one-call materialise."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import dagster as dg
from PIL import Image

from shorts_pipeline.assets import production_assets
from shorts_pipeline.models import ProjectSettings
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.clip_sources import LocalLibrarySource
from shorts_pipeline.resources.llm import ScriptWriterResource
from shorts_pipeline.resources.media_store import MediaStoreResource
from shorts_pipeline.resources.tts import TtsResource
from shorts_pipeline.resources.video_gen import VideoGenResource
from shorts_pipeline.resources.ytdlp_source import YtDlpSource

# Short clips and cards: a whole ranking renders in a few seconds, still at 1080x1920.
# Silent unless a test asks for narration (tests/test_explainer.py does).
FAST_SETTINGS: dict[str, Any] = dict(
    count=3,
    clip_min_seconds=1.5,
    clip_max_seconds=1.5,
    title_seconds=1.0,
    outro_seconds=1.0,
    narration=False,
)


def fast_settings(**overrides: Any) -> ProjectSettings:
    return ProjectSettings(**{**FAST_SETTINGS, **overrides})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def project_resources(
    library: Path, media_url: str | None = None, ytdlp: YtDlpSource | None = None
) -> dict[str, Any]:
    return {
        "catalog": CatalogResource(),
        "media_store": MediaStoreResource(url=media_url),
        "library": LocalLibrarySource(directory=str(library)),
        "ytdlp": ytdlp or YtDlpSource(),
        "script_writer": ScriptWriterResource(),
        "tts": TtsResource(),
        "video_gen": VideoGenResource(poll_interval=0.05),
    }


def materialize_project(
    key: str,
    resources: dict[str, Any],
    instance: dg.DagsterInstance | None = None,
    **kwargs: Any,
) -> dg.ExecuteInProcessResult:
    """Register the partition and materialise the ranking graph (or `selection=`) for it."""
    instance = instance or dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("project", [key])
    return dg.materialize(
        production_assets, partition_key=key, instance=instance, resources=resources, **kwargs
    )


def frame_at(video: Path, seconds: float, out: Path) -> Image.Image:
    """The frame of `video` at `seconds`, decoded by ffmpeg into `out` (PNG), as RGB."""
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-ss",
            f"{seconds:.3f}",
            "-i",
            str(video),
            "-frames:v",
            "1",
            str(out),
        ],
        check=True,
    )
    return Image.open(out).convert("RGB")
