"""Domain models shared by every layer: the CLI, resources, assets and the render engine's callers.

They are small, typed and JSON-serialisable; media files never travel inside them, only the
media-store keys that name the files.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class ProjectFormat(StrEnum):
    ranking = "ranking"
    explainer = "explainer"
    extend = "extend"


class ProjectStatus(StrEnum):
    registered = "registered"
    running = "running"
    rendered = "rendered"
    failed = "failed"
    uploaded = "uploaded"
    published = "published"


FitMode = Literal["cover", "contain"]
TrimMode = Literal["start", "middle"]
Transition = Literal["fade", "slide", "wipe", "none"]


class ProjectSettings(BaseModel):
    """Everything a creator can tune for one project; defaults make a good Top-5 short."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(5, ge=1, le=10, description="How many clips a ranking shows.")
    clip_min_seconds: float = Field(5.0, ge=1.0, le=30.0)
    clip_max_seconds: float = Field(8.0, ge=1.0, le=30.0)
    trim: TrimMode = Field("start", description="Which part of each clip to keep.")
    fit: FitMode = Field("cover", description="cover crops to 9:16; contain adds a blurred fill.")
    transition: Transition = "fade"
    transition_seconds: float = Field(0.4, ge=0.0, le=1.5)
    title_seconds: float = Field(2.0, ge=0.0, le=6.0)
    outro_seconds: float = Field(2.0, ge=0.0, le=6.0)
    max_duration: float = Field(60.0, gt=0, le=180.0, description="Platform limit (Shorts: 60 s).")
    music: str | None = Field(
        "bundled", description="'bundled' for the built-in bed, a file path, or None for none."
    )
    music_db: float = Field(-16.0, le=0.0, description="Music level under the clips' audio.")
    language: str = "en"
    library: str | None = Field(
        None, description="Clip library folder; default SHORTS_HOME/library"
    )
    search_source: Literal["library", "youtube", "tiktok"] = Field(
        "library", description="Where keyword search looks: the local library or YouTube (yt-dlp)."
    )
    urls: list[str] = Field(
        default_factory=list,
        description="Video, playlist or channel URLs to rank instead of a keyword search (yt-dlp).",
    )

    @field_validator("clip_max_seconds")
    @classmethod
    def _max_not_below_min(cls, v: float, info: ValidationInfo) -> float:
        low = info.data.get("clip_min_seconds", 1.0)
        if v < low:
            raise ValueError(f"clip_max_seconds ({v}) must be ≥ clip_min_seconds ({low})")
        return v


class ProjectSpec(BaseModel):
    """A project as the catalog stores it: one Dagster partition."""

    key: str
    title: str
    format: ProjectFormat = ProjectFormat.ranking
    keywords: list[str] = Field(default_factory=list)
    settings: ProjectSettings = Field(default_factory=ProjectSettings)
    publish_at: datetime | None = None
    review: bool = False
    status: ProjectStatus = ProjectStatus.registered
    selected_clip_ids: list[str] | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def search_terms(self) -> list[str]:
        return self.keywords or [self.title]


class ClipCandidate(BaseModel):
    """One row of search_results: a clip a source found, before anything is downloaded."""

    id: str
    source: str
    url: str
    title: str
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    views: int | None = None
    likes: int | None = None
    published: datetime | None = None
    thumbnail: str | None = None
    tags: list[str] = Field(default_factory=list)


class SelectedClip(BaseModel):
    """A chosen clip, downloaded and probed, with its place in the video."""

    rank: int
    candidate: ClipCandidate
    score: float
    media_key: str
    duration: float
    display_width: int
    display_height: int
    rotation: int
    fps: float
    has_audio: bool
    video_codec: str
    trim_start: float
    trim_seconds: float


class SkippedClip(BaseModel):
    clip_id: str
    title: str
    reason: str


class Selections(BaseModel):
    project_key: str
    manual: bool
    clips: list[SelectedClip]
    skipped: list[SkippedClip] = Field(default_factory=list)


class SlideSet(BaseModel):
    """The images a video needs, as media-store keys; badge positions on the 1080x1920 frame."""

    project_key: str
    title_card: str
    outro_card: str
    badges: dict[int, str]
    badge_boxes: dict[int, tuple[int, int, int, int]]
    contact_sheet: str | None = None


class VideoRecord(BaseModel):
    project_key: str
    media_key: str
    thumbnail_key: str
    duration: float
    width: int
    height: int
    fps: float
    size_bytes: int
    loudness_lufs: float | None
    true_peak_dbtp: float | None
    render_seconds: float


class UploadRecord(BaseModel):
    project_key: str
    media_key: str
    url: str
    sha256: str
    size_bytes: int
    thumbnail_url: str | None = None
