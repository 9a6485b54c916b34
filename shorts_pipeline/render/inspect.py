"""What a finished video really is: the facts the quality checks judge."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from shorts_pipeline.render.loudness import Loudness, measure_loudness
from shorts_pipeline.render.probe import probe_json


@dataclass(frozen=True)
class VideoFacts:
    width: int
    height: int
    sar: str
    fps: float
    duration: float
    video_codec: str
    profile: str
    pix_fmt: str
    color_primaries: str | None
    has_audio: bool
    audio_codec: str | None
    audio_rate: int | None
    audio_channels: int | None
    faststart: bool
    size_bytes: int
    loudness: Loudness | None


def inspect_video(path: str | Path, measure_audio: bool = True) -> VideoFacts:
    data = probe_json(path)
    streams = data.get("streams", [])
    video: dict = next((s for s in streams if s.get("codec_type") == "video"), {})
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    rate = video.get("avg_frame_rate") or "0/1"
    try:
        fps = float(Fraction(rate)) if rate != "0/0" else 0.0
    except (ValueError, ZeroDivisionError):
        fps = 0.0
    return VideoFacts(
        width=int(video.get("width", 0)),
        height=int(video.get("height", 0)),
        sar=str(video.get("sample_aspect_ratio", "1:1")),
        fps=round(fps, 3),
        duration=float(data.get("format", {}).get("duration", 0.0)),
        video_codec=str(video.get("codec_name", "")),
        profile=str(video.get("profile", "")),
        pix_fmt=str(video.get("pix_fmt", "")),
        color_primaries=video.get("color_primaries"),
        has_audio=audio is not None,
        audio_codec=audio.get("codec_name") if audio else None,
        audio_rate=int(audio["sample_rate"]) if audio else None,
        audio_channels=int(audio["channels"]) if audio else None,
        faststart=_moov_before_mdat(Path(path)),
        size_bytes=Path(path).stat().st_size,
        loudness=measure_loudness(path) if (audio is not None and measure_audio) else None,
    )


def _moov_before_mdat(path: Path) -> bool:
    """True when the MP4's index (moov) precedes its media (mdat): playable while loading."""
    with path.open("rb") as f:
        offset = 0
        size = path.stat().st_size
        while offset < size:
            f.seek(offset)
            header = f.read(16)
            if len(header) < 8:
                return False
            box_size = int.from_bytes(header[:4], "big")
            kind = header[4:8]
            if box_size == 1:
                box_size = int.from_bytes(header[8:16], "big")
            if kind == b"moov":
                return True
            if kind == b"mdat":
                return False
            if box_size < 8:
                return False
            offset += box_size
    return False
