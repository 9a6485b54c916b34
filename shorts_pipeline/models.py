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
TtsEngine = Literal["espeak", "gtts", "openai"]
ScriptWriterName = Literal["offline", "openai"]
SlideStyle = Literal["basic", "animated"]
Aspect = Literal["9:16", "16:9", "1:1"]
VideoProviderName = Literal["storyboard", "fal"]

# The finished video's size for each aspect: full HD on the long side.
OUTPUT_SIZES: dict[str, tuple[int, int]] = {
    "9:16": (1080, 1920),
    "16:9": (1920, 1080),
    "1:1": (1080, 1080),
}

# Source texts larger than this are refused with a clear message (≈ 25 000 words); the LLM
# writer condenses anything over its own prompt budget first.
SOURCE_TEXT_MAX_BYTES = 120_000


class ScriptSettings(BaseModel):
    """How the script is written: by the offline writer or an OpenAI-compatible chat API."""

    model_config = ConfigDict(extra="forbid")

    writer: ScriptWriterName = Field(
        "offline",
        description="'offline' (deterministic, no network) or 'openai' (any "
        "OpenAI-compatible chat API; key from OPENAI_API_KEY).",
    )
    target_seconds: float = Field(45.0, ge=5.0, le=180.0, description="Spoken length to aim for.")
    max_chapters: int = Field(4, ge=1, le=10)
    max_scenes: int = Field(10, ge=1, le=30, description="Scenes in the whole script, at most.")
    tone: str = Field("clear, friendly and concrete", max_length=200)
    model: str = Field("gpt-4o-mini", description="Chat model name for the openai writer.")
    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint (Ollama, vLLM…); default OPENAI_BASE_URL."
    )
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(2000, ge=100, le=16000)
    timeout_seconds: float = Field(60.0, gt=0, le=600)


class VoiceSettings(BaseModel):
    """How the script is spoken."""

    model_config = ConfigDict(extra="forbid")

    engine: TtsEngine = Field("espeak", description="espeak (offline), gtts or openai.")
    voice: str | None = Field(
        None,
        description="Engine voice; default: the project language's voice (espeak 'ko', "
        "'en-us'; openai 'alloy').",
    )
    speed: float = Field(1.0, ge=0.5, le=2.0, description="1.0 is the engine's normal rate.")
    model: str = Field("gpt-4o-mini-tts", description="Speech model for the openai engine.")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint for speech.")
    timeout_seconds: float = Field(60.0, gt=0, le=600)


class SubtitleSettings(BaseModel):
    """Burned-in subtitles (and the SRT that goes with the upload)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    highlight_words: bool = Field(True, description="Colour the word being spoken.")
    font_size: int = Field(68, ge=32, le=120, description="Pixels on the 1080x1920 frame.")
    max_lines: int = Field(2, ge=1, le=3)
    position: Literal["bottom", "middle"] = "bottom"


class ExtendSettings(BaseModel):
    """Extend videos: N AI-generated segments, each continuing from the last frames of the one
    before, joined seamlessly."""

    model_config = ConfigDict(extra="forbid")

    provider: VideoProviderName = Field(
        "storyboard",
        description="'storyboard' (offline: an animated preview of each planned segment, "
        "labelled as such) or 'fal' (fal.ai image-to-video models; key from FAL_KEY).",
    )
    segment_count: int = Field(6, ge=2, le=10, description="Segments in the plan.")
    segment_seconds: float = Field(
        5.0, ge=2.0, le=12.0, description="Seconds the model generates per segment."
    )
    aspect: Aspect = Field("9:16", description="9:16 (Shorts), 16:9 or 1:1.")
    resolution: Literal["720p", "1080p"] = Field(
        "720p", description="What the model is asked for; the video is always full HD."
    )
    max_segments: int = Field(
        8,
        ge=1,
        le=10,
        description="Cost guard: a plan with more segments is refused before generation.",
    )
    max_cost_usd: float = Field(
        5.0, ge=0.0, description="Cost guard: generation estimated above this is refused."
    )
    price_per_second_usd: float = Field(
        0.05,
        ge=0.0,
        description="What the provider charges per generated second, for the estimate "
        "(fal.ai's Kling 2.1 standard: about $0.05/s; check your model's price).",
    )
    fal_text_model: str = Field(
        "fal-ai/kling-video/v2.1/master/text-to-video",
        description="fal.ai model that makes segment 1 from its prompt.",
    )
    fal_image_model: str = Field(
        "fal-ai/kling-video/v2.1/standard/image-to-video",
        description="fal.ai model that makes each later segment from the previous one's frame.",
    )
    fal_arguments: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Extra model arguments sent as they are (e.g. negative_prompt, cfg_scale).",
    )
    fal_timeout_seconds: float = Field(
        900.0, gt=0, le=3600, description="Longest wait for one segment, queue included."
    )
    seam_seconds: float = Field(
        0.2, ge=0.0, le=1.0, description="Crossfade hiding each joint; 0 for a hard cut."
    )
    colour_match: bool = Field(
        True, description="Match every segment's colours to segment 1 (stops drift)."
    )
    tail_window: float = Field(
        0.5,
        ge=0.05,
        le=2.0,
        description="The next segment starts from the sharpest frame of this last stretch.",
    )


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
    narration: bool = Field(True, description="Speak the script (ranking videos too).")
    script: ScriptSettings = Field(default_factory=ScriptSettings)
    voice: VoiceSettings = Field(default_factory=VoiceSettings)
    subtitles: SubtitleSettings = Field(default_factory=SubtitleSettings)
    slide_style: SlideStyle = Field(
        "animated", description="Explainer slides: 'basic' stills or 'animated' (Ken Burns)."
    )
    slide_background: Literal["gradient", "solid"] = "gradient"
    broll: bool = Field(True, description="Explainers show matching library clips as b-roll.")
    scene_pad_seconds: float = Field(
        0.4, ge=0.0, le=3.0, description="Silence after each scene's narration."
    )
    duck_db: float = Field(
        -12.0, le=0.0, description="How far music and clip sound dip under the voice."
    )
    publisher: Literal["local", "youtube"] = Field(
        "local", description="Where the video is published: the local channel or YouTube."
    )
    privacy: Literal["public", "unlisted", "private"] = "public"
    extend: ExtendSettings = Field(default_factory=ExtendSettings)

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
    source_text: str | None = Field(
        None, description="Article, notes or training text an explainer is written from."
    )
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


class SceneVisual(BaseModel):
    """What an explainer scene shows: a slide image or a b-roll clip."""

    index: int
    kind: Literal["slide", "broll"]
    media_key: str
    clip_id: str | None = None
    clip_start: float = 0.0


class SlideSet(BaseModel):
    """The images a video needs, as media-store keys; badge positions on the 1080x1920 frame."""

    project_key: str
    title_card: str | None = None
    outro_card: str | None = None
    badges: dict[int, str] = Field(default_factory=dict)
    badge_boxes: dict[int, tuple[int, int, int, int]] = Field(default_factory=dict)
    contact_sheet: str | None = None
    scenes: list[SceneVisual] = Field(default_factory=list)
    captions: dict[int, str] = Field(
        default_factory=dict, description="Extend storyboards: the label over each segment."
    )
    caption_boxes: dict[int, tuple[int, int, int, int]] = Field(default_factory=dict)
    skipped_reason: str | None = None


class GeneratedSegment(BaseModel):
    """One generated segment of an extend video, stored as soon as it is done, and how it
    joins the next one."""

    index: int
    media_key: str
    digest: str = Field(
        description="What it was made from, chained: its prompt, settings and "
        "the digest of the segment before. Equal digests mean reusable files."
    )
    provider: str
    model: str | None = None
    prompt: str
    reference_key: str | None = Field(None, description="The image it was generated from.")
    next_reference_key: str | None = Field(
        None, description="The sharpest late frame, colour-matched: the next segment's start."
    )
    planned_seconds: float
    duration: float
    width: int
    height: int
    fps: float
    start: float = Field(
        0.0, description="Seconds skipped: leading frames repeating the reference."
    )
    end: float = Field(
        description="Where it is cut: just after the next segment's reference frame."
    )
    colour_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    colour_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    drift_before: float = Field(0.0, description="ΔE (CIELAB) of mean colour vs segment 1.")
    drift_after: float = Field(0.0, description="The same after colour matching.")
    reused: bool = False
    request_id: str | None = None
    generate_seconds: float = 0.0
    notes: list[str] = Field(default_factory=list)


class SegmentSet(BaseModel):
    """Every generated segment of an extend video, or why the project has none."""

    project_key: str
    provider: str | None = None
    storyboard: bool = False
    segments: list[GeneratedSegment] = Field(default_factory=list)
    estimated_cost_usd: float = 0.0
    skipped_reason: str | None = None


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
    subtitles_key: str | None = None


class UploadRecord(BaseModel):
    project_key: str
    media_key: str
    url: str
    sha256: str
    size_bytes: int
    thumbnail_url: str | None = None
    subtitles_url: str | None = None


# ---- script -----------------------------------------------------------------------------

SceneRole = Literal["intro", "scene", "clip", "outro"]


class ScriptScene(BaseModel):
    """One scene: what is said, what is shown on screen, and what b-roll would fit."""

    model_config = ConfigDict(extra="ignore")

    narration: str = Field(max_length=1500, description="What the voice says in this scene.")
    on_screen_text: str = Field("", max_length=300, description="Short text on the slide.")
    duration: float | None = Field(
        None, gt=0, le=60, description="Seconds, when it must differ from the narration's."
    )
    visual_hint: str = Field("", max_length=300, description="What the picture should show.")
    broll_keywords: list[str] = Field(default_factory=list, max_length=8)
    role: SceneRole = "scene"
    clip_rank: int | None = Field(None, description="Ranking: the rank this line introduces.")


class ScriptChapter(BaseModel):
    model_config = ConfigDict(extra="ignore")

    title: str = Field(max_length=200)
    scenes: list[ScriptScene] = Field(min_length=1)


class PlannedSegment(BaseModel):
    """One AI-generated segment of an extend video, as planned."""

    model_config = ConfigDict(extra="ignore")

    action: str = Field(max_length=400, description="What happens in this segment.")
    prompt: str = Field(
        max_length=2000,
        description="The whole prompt sent to the model: the shared context, the action and "
        "(after the first) the instruction to continue from the reference frame.",
    )


class SegmentPlan(BaseModel):
    """The plan of an extend video: context every segment shares, then the segments."""

    model_config = ConfigDict(extra="ignore")

    subject: str = Field(max_length=300)
    style: str = Field(max_length=300)
    camera: str = Field(max_length=300)
    lighting: str = Field(max_length=300)
    continuity: str = Field(max_length=500, description="Sent with every segment after the first.")
    seconds: float = Field(gt=0, le=20, description="Seconds per generated segment.")
    aspect: Aspect = "9:16"
    segments: list[PlannedSegment] = Field(min_length=1, max_length=10)


class VideoScript(BaseModel):
    """The validated script of a video: chapters of scenes, in order. Extend videos also
    carry their segment plan (one scene per segment: the narration spoken over it)."""

    model_config = ConfigDict(extra="ignore")

    title: str = Field(max_length=300)
    language: str = "en"
    chapters: list[ScriptChapter] = Field(min_length=1)
    writer: str = Field("offline", description="offline, openai:<model>, or edited")
    plan: SegmentPlan | None = None

    def scenes(self) -> list[ScriptScene]:
        return [scene for chapter in self.chapters for scene in chapter.scenes]

    def scene_chapters(self) -> list[tuple[int, ScriptChapter, ScriptScene]]:
        """(chapter index, chapter, scene) for every scene, in order."""
        return [(i, ch, sc) for i, ch in enumerate(self.chapters) for sc in ch.scenes]

    def to_markdown(self) -> str:
        lines = [f"# {self.title}", "", f"*{self.language} · written by {self.writer}*", ""]
        n = 0
        for chapter in self.chapters:
            lines += [f"## {chapter.title}", ""]
            for scene in chapter.scenes:
                n += 1
                lines.append(f"**{n}.** {scene.narration}")
                if scene.on_screen_text:
                    lines.append(f"  - on screen: _{scene.on_screen_text}_")
                if scene.broll_keywords:
                    lines.append(f"  - b-roll: {', '.join(scene.broll_keywords)}")
                lines.append("")
        if self.plan is not None:
            plan = self.plan
            lines += [
                "## Segment plan",
                "",
                f"{len(plan.segments)} × {plan.seconds:g} s, {plan.aspect}",
                "",
                f"- subject: {plan.subject}",
                f"- style: {plan.style}",
                f"- camera: {plan.camera}",
                f"- lighting: {plan.lighting}",
                f"- continuity: {plan.continuity}",
                "",
            ]
            for k, seg in enumerate(plan.segments, start=1):
                lines += [f"**segment {k}** — {seg.action}", f"> {seg.prompt}", ""]
        return "\n".join(lines)


# ---- narration --------------------------------------------------------------------------


class WordTiming(BaseModel):
    """A spoken word and when it is heard, in seconds from the start of its scene's audio."""

    word: str
    start: float
    end: float


class SceneAudio(BaseModel):
    index: int
    text: str = Field(description="The text as spoken (Markdown, URLs and symbols removed).")
    media_key: str | None = Field(None, description="None when the scene has nothing to say.")
    duration: float = Field(description="Measured length of the audio file, in seconds.")
    words: list[WordTiming] = Field(default_factory=list)
    cached: bool = False


class Narration(BaseModel):
    """Speech for every scene, or the reason there is none."""

    project_key: str
    engine: str | None = None
    voice: str | None = None
    language: str = "en"
    scenes: list[SceneAudio] = Field(default_factory=list)
    track_key: str | None = Field(None, description="Every scene joined, with the scene pads.")
    duration: float = 0.0
    skipped_reason: str | None = None


# ---- publishing -------------------------------------------------------------------------


class PublishRequest(BaseModel):
    """Everything a publisher needs to put one video on a channel. Files are local paths."""

    project_key: str
    idempotency_key: str = Field(
        description="Same for every attempt to publish this render; a publisher that sees it "
        "again returns the first result instead of publishing twice."
    )
    title: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    language: str = "en"
    publish_at: datetime | None = Field(None, description="When it goes public (UTC).")
    privacy: Literal["public", "unlisted", "private"] = "public"
    video_path: str
    thumbnail_path: str | None = None
    subtitles_path: str | None = None
    synthetic_media: bool = Field(
        True, description="Made with synthetic voice/visuals: disclosed where platforms ask."
    )


class PublishedVideo(BaseModel):
    """Where a video was published."""

    platform: str
    video_id: str
    url: str
    published_at: datetime
    idempotency_key: str
    details: dict[str, str] = Field(default_factory=dict)
