"""AI video generation for extend projects: one segment at a time, from a prompt and (after
the first) a reference image, by the provider the project names.

- `storyboard` (offline default): an animated preview of the planned segment — the reference
  frame under slow camera motion, dissolving into a drawn panel of the segment — so a creator
  can review the plan before paying for generation. Labelled as a storyboard in metadata and,
  by the video stage, on the picture.
- `fal`: fal.ai's hosted text-to-video and image-to-video models through fal's queue protocol
  (`resources/fal.py`); key from FAL_KEY, queue URL a setting.
"""

from __future__ import annotations

import base64
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from PIL import Image
from pydantic import Field

from shorts_pipeline.models import ExtendSettings
from shorts_pipeline.render.storyboard import render_storyboard_segment
from shorts_pipeline.resources.fal import FalClient, VideoGenError

# What each provider is asked for, per aspect and resolution (width, height).
GENERATION_SIZES: dict[tuple[str, str], tuple[int, int]] = {
    ("9:16", "720p"): (720, 1280),
    ("9:16", "1080p"): (1080, 1920),
    ("16:9", "720p"): (1280, 720),
    ("16:9", "1080p"): (1920, 1080),
    ("1:1", "720p"): (720, 720),
    ("1:1", "1080p"): (1080, 1080),
}
STORYBOARD_FPS = 30
REFERENCE_JPEG_QUALITY = 92  # the reference travels as a data URI: a JPEG is ~10x smaller


@dataclass(frozen=True)
class SegmentRequest:
    """One segment to generate. `index` counts from 0; `reference` is the image it must
    continue from (None for the first segment)."""

    index: int
    count: int
    prompt: str
    action: str
    seconds: float
    reference: Path | None = None

    @property
    def what(self) -> str:
        return f"segment {self.index + 1}/{self.count}"


@dataclass
class SegmentOutput:
    path: Path
    provider: str
    model: str | None
    request_id: str | None
    seconds: float  # wall time spent generating
    notes: list[str] = field(default_factory=list)


def generation_size(settings: ExtendSettings) -> tuple[int, int]:
    return GENERATION_SIZES[(settings.aspect, settings.resolution)]


class VideoGenResource(dg.ConfigurableResource):
    """Generates extend segments with the provider in the project's settings
    (`settings.extend.provider`). The fal.ai key is `fal_key` (bind it with
    `dg.EnvVar("FAL_KEY")`) or, when unset, the FAL_KEY environment variable at call time; it
    is never logged."""

    fal_key: str | None = Field(default=None, description="fal.ai key; default: FAL_KEY.")
    fal_queue_url: str | None = Field(
        default=None,
        description="fal's queue endpoint; default FAL_QUEUE_URL, else https://queue.fal.run.",
    )
    poll_interval: float = Field(default=2.0, gt=0, description="Seconds between status polls.")

    def model_for(self, settings: ExtendSettings, index: int) -> str | None:
        if settings.provider == "storyboard":
            return None
        return settings.fal_text_model if index == 0 else settings.fal_image_model

    def generate(
        self,
        request: SegmentRequest,
        settings: ExtendSettings,
        dest: Path,
        log: Callable[[str], None] = lambda _: None,
    ) -> SegmentOutput:
        """Generate `request` into `dest` (an MP4, written atomically)."""
        started = time.monotonic()
        if settings.provider == "storyboard":
            width, height = generation_size(settings)
            render_storyboard_segment(
                dest,
                prompt=request.action,
                index=request.index,
                count=request.count,
                seconds=request.seconds,
                width=width,
                height=height,
                fps=STORYBOARD_FPS,
                reference=request.reference,
            )
            return SegmentOutput(
                dest, "storyboard", None, None, time.monotonic() - started, ["storyboard preview"]
            )
        return self._fal(request, settings, dest, log, started)

    def _fal(
        self,
        request: SegmentRequest,
        settings: ExtendSettings,
        dest: Path,
        log: Callable[[str], None],
        started: float,
    ) -> SegmentOutput:
        key = self.fal_key or os.environ.get("FAL_KEY") or ""
        if not key:
            raise VideoGenError(
                f"{request.what}: no fal.ai key: set FAL_KEY, or set "
                "settings.extend.provider='storyboard' to preview the plan offline"
            )
        model = self.model_for(settings, request.index) or ""
        arguments: dict[str, object] = {
            "prompt": request.prompt,
            "duration": _duration_argument(request.seconds),
            "aspect_ratio": settings.aspect,
        }
        if request.reference is not None:
            arguments["image_url"] = _reference_uri(request.reference)
        arguments.update(settings.fal_arguments)
        client = FalClient(
            api_key=key,
            queue_url=self.fal_queue_url
            or os.environ.get("FAL_QUEUE_URL")
            or "https://queue.fal.run",
            poll_interval=self.poll_interval,
            timeout_seconds=settings.fal_timeout_seconds,
        )
        result = client.generate(
            model,
            arguments,
            dest,
            what=request.what,
            on_status=lambda status: log(f"{request.what}: {status}"),
        )
        return SegmentOutput(
            result.path,
            "fal",
            model,
            result.request_id,
            time.monotonic() - started,
            [f"fal request {result.request_id}"],
        )


def _duration_argument(seconds: float) -> str:
    """fal's video models take whole seconds as a string ("5", "10")."""
    return str(max(1, round(seconds)))


def _reference_uri(reference: Path) -> str:
    """The reference image as a JPEG data URI (a PNG frame would be ~10x larger)."""
    with Image.open(reference) as img:
        buffer = io.BytesIO()
        img.convert("RGB").save(buffer, "JPEG", quality=REFERENCE_JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


__all__ = [
    "GENERATION_SIZES",
    "SegmentOutput",
    "SegmentRequest",
    "VideoGenError",
    "VideoGenResource",
    "generation_size",
]
