"""The one ffprobe wrapper: what a clip really is, as plain data.

`probe_clip` reads a file and returns a `MediaInfo` whose display size already accounts for
rotation metadata and non-square pixels, so the filter-graph builder can fit any input
without asking ffprobe again. A file that is not a usable video raises `ProbeError` with the
reason a person can act on (empty, not a video, audio only, too short, unreadable).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from shorts_pipeline.render.errors import ProbeError, ToolMissingError

MIN_CLIP_SECONDS = 1.0


@dataclass(frozen=True)
class MediaInfo:
    """What a video file holds, with the display geometry already resolved."""

    path: str
    duration: float
    width: int  # coded width in pixels
    height: int  # coded height in pixels
    rotation: int  # degrees the player turns the picture: 0, 90, 180 or 270
    sar: Fraction  # sample (pixel) aspect ratio
    fps: float  # average frame rate
    variable_frame_rate: bool
    video_codec: str
    pix_fmt: str
    has_audio: bool
    audio_codec: str | None
    audio_rate: int | None
    audio_channels: int | None
    size_bytes: int
    color_matrix: str | None = None  # e.g. bt709, smpte170m (bt601); None when untagged

    @property
    def display_width(self) -> int:
        """Width as a player shows it: pixels made square, then rotated."""
        w = round(self.width * self.sar)
        return self.height if self.rotation in (90, 270) else w

    @property
    def display_height(self) -> int:
        w = round(self.width * self.sar)
        return w if self.rotation in (90, 270) else self.height

    @property
    def orientation(self) -> str:
        dw, dh = self.display_width, self.display_height
        if abs(dw - dh) <= max(dw, dh) * 0.02:
            return "square"
        return "portrait" if dh > dw else "landscape"


def ffprobe_binary() -> str:
    path = shutil.which("ffprobe")
    if path is None:
        raise ToolMissingError(
            "ffprobe was not found on PATH. Install ffmpeg (Debian/Ubuntu: `sudo apt-get install "
            "ffmpeg`, macOS: `brew install ffmpeg`) or run `make demo`, which installs it."
        )
    return path


def ffmpeg_binary() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise ToolMissingError(
            "ffmpeg was not found on PATH. Install it (Debian/Ubuntu: `sudo apt-get install "
            "ffmpeg`, macOS: `brew install ffmpeg`) or run `make demo`, which installs it."
        )
    return path


def probe_json(path: str | Path) -> dict:
    """Raw ffprobe JSON (format + streams) for a file; raises ProbeError if ffprobe cannot."""
    p = Path(path)
    if not p.exists():
        raise ProbeError(str(p), "file does not exist")
    if p.stat().st_size == 0:
        raise ProbeError(str(p), "file is empty (0 bytes); download or copy it again")
    cmd = [
        ffprobe_binary(),
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        media_argument(p),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise ProbeError(str(p), f"not a readable media file ({_reason(proc.stderr, p)})")
    return json.loads(proc.stdout or "{}")


def media_argument(path: str | Path) -> str:
    """`path` as ffmpeg and ffprobe must be given it: absolute, so that a file named like a
    protocol URL (`data:,x.mp4`, `concat:a|b`, `subfile:…`) is read as the file it is."""
    return os.path.abspath(os.fspath(path))


def _reason(stderr: str, path: Path) -> str:
    """The most telling line of ffprobe's complaint, without the path it repeats.

    ffprobe falls back on the file name's extension when it recognises nothing, so a web
    page or random bytes saved as `.mp4` would read as an mp4 without its index; the first
    bytes of the file say what it really is.
    """
    names = (f"{media_argument(path)}: ", f"{path}: ")
    lines = []
    for line in stderr.splitlines():
        for name in names:
            line = line.replace(name, "")
        if line.strip():
            lines.append(line.strip())
    content = _content_kind(path)
    if content is not None:
        return content
    for line in lines:
        if "moov atom not found" in line:
            return "incomplete file: its index (moov atom) is missing; download or copy it again"
    return lines[-1] if lines else "unknown error"


# ISO media (mp4, mov, m4a, 3gp) files start with one of these boxes.
_ISO_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp", b"uuid"}
_SNIFF_BYTES = 4096


def _content_kind(path: Path) -> str | None:
    """What an unreadable file holds when it is plainly not media: text, a web page, or bytes
    in no container format; None when it may be media that is merely damaged."""
    try:
        with path.open("rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return None
    if not head or head[4:8] in _ISO_BOXES or head[:4] in _MEDIA_MAGIC:
        return None
    if b"\0" not in head:
        text = head.decode("utf-8", errors="replace")
        printable = sum(ch.isprintable() or ch in "\t\r\n" for ch in text)
        if printable >= 0.95 * len(text):
            if re.search(r"<\s*(!doctype|html|head|body|title)\b", text, re.IGNORECASE):
                return (
                    "an HTML page (text), not a video: a download that got an error or "
                    "sign-in page instead of the clip; download it again from the video's page"
                )
            return "a text file, not a video; replace it with the video clip"
    return (
        "its data is in no audio or video format ffmpeg knows (random or corrupt data); "
        "replace the file"
    )


# First bytes of media containers ffmpeg reads that are not ISO boxes (Matroska/WebM, RIFF
# AVI/WAV, MPEG-PS, Ogg, FLV, ASF, MPEG-TS sync byte is checked by ffmpeg itself).
_MEDIA_MAGIC = {
    b"\x1aE\xdf\xa3",
    b"RIFF",
    b"\x00\x00\x01\xba",
    b"\x00\x00\x01\xb3",
    b"OggS",
    b"FLV\x01",
    b"0&\xb2u",
    b"fLaC",
    b"ID3\x03",
    b"ID3\x04",
}


# Messages ffmpeg prints when the data a container's index promises is not in the file.
_TRUNCATION_SIGNS = (
    "partial file",
    "File ended prematurely",
    "Invalid NAL unit size",
    "Error while decoding",
    "Invalid data found",
    "Packet corrupt",
    "corrupt input packet",
)


def check_tail_decodes(path: str | Path, seconds: float = 1.0) -> None:
    """Decode the last `seconds` of the video stream; raise ProbeError if the file is cut off.

    Containers with their index up front (mp4 +faststart, webm, mkv) still probe with their
    full duration after a download stops half way; only decoding the end shows it.
    """
    # Warnings too: ffmpeg reports packets the index promises but the file lacks as
    # warnings, and a cut that removed the whole last second decodes nothing at all (so
    # frames are counted: framecrc prints one line per decoded frame).
    cmd = [
        ffmpeg_binary(),
        "-nostdin",
        "-v",
        "warning",
        "-sseof",
        f"-{seconds:.2f}",
        "-i",
        media_argument(path),
        "-map",
        "0:v:0",
        "-f",
        "framecrc",
        "-",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    frames = sum(1 for line in proc.stdout.splitlines() if line and not line.startswith("#"))
    if (
        proc.returncode != 0
        or frames == 0
        or any(sign in proc.stderr for sign in _TRUNCATION_SIGNS)
    ):
        raise ProbeError(
            str(path), "truncated: the end of the video cannot be decoded; download it again"
        )


def probe_clip(
    path: str | Path, min_seconds: float = MIN_CLIP_SECONDS, check_tail: bool = True
) -> MediaInfo:
    """Probe a video clip; raise ProbeError when it cannot be used as one.

    With `check_tail` (the default) the last second is decoded too, which catches files
    cut short whose index still claims the full length.
    """
    p = Path(path)
    data = probe_json(p)
    streams = data.get("streams", [])
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video"
            and not s.get("disposition", {}).get("attached_pic", 0)
        ),
        None,
    )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None:
        kind = "an audio-only file" if audio is not None else "not a video"
        raise ProbeError(str(p), f"{kind}: it has no video stream; use a video clip instead")
    fmt_name = data.get("format", {}).get("format_name", "")
    if fmt_name in {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "gif_pipe"}:
        raise ProbeError(str(p), f"an image ({fmt_name}), not a video clip")
    duration = _duration(data, video)
    if duration is None:
        raise ProbeError(str(p), "duration unknown: the file is truncated or still being written")
    if duration < min_seconds:
        raise ProbeError(
            str(p), f"too short ({duration:.2f} s); clips need at least {min_seconds:.1f} s"
        )
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise ProbeError(str(p), "video stream has no picture size; the file is damaged")
    avg = _rate(video.get("avg_frame_rate"))
    real = _rate(video.get("r_frame_rate"))
    fps = avg or real or 30.0
    vfr = bool(avg and real and abs(avg - real) / real > 0.01)
    if check_tail:
        check_tail_decodes(p)
    return MediaInfo(
        path=str(p),
        duration=duration,
        width=width,
        height=height,
        rotation=_rotation(video),
        sar=_sar(video.get("sample_aspect_ratio")),
        fps=round(fps, 3),
        variable_frame_rate=vfr,
        video_codec=str(video.get("codec_name", "unknown")),
        pix_fmt=str(video.get("pix_fmt", "unknown")),
        has_audio=audio is not None,
        audio_codec=audio.get("codec_name") if audio else None,
        audio_rate=int(audio["sample_rate"]) if audio and audio.get("sample_rate") else None,
        audio_channels=int(audio["channels"]) if audio and audio.get("channels") else None,
        size_bytes=p.stat().st_size,
        color_matrix=_tag(video.get("color_space")),
    )


def _tag(value: object) -> str | None:
    text = str(value or "").strip()
    return None if text in {"", "unknown", "reserved", "unspecified"} else text


def _duration(data: dict, video: dict) -> float | None:
    for raw in (data.get("format", {}).get("duration"), video.get("duration")):
        try:
            value = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if value > 0:
            return value
    return None


def _rate(raw: str | None) -> float | None:
    if not raw or raw in {"0/0", "0"}:
        return None
    try:
        value = float(Fraction(raw))
    except (ValueError, ZeroDivisionError):
        return None
    return value if 0 < value < 1000 else None


def _sar(raw: str | None) -> Fraction:
    if not raw or raw in {"0:1", "N/A"}:
        return Fraction(1)
    num, _, den = raw.partition(":")
    try:
        value = Fraction(int(num), int(den))
    except (ValueError, ZeroDivisionError):
        return Fraction(1)
    return value if value > 0 else Fraction(1)


def _rotation(video: dict) -> int:
    """Rotation a player applies, from side data (new) or the rotate tag (old)."""
    angle: float | None = None
    for side in video.get("side_data_list", []) or []:
        if "rotation" in side:
            # Only the axis matters downstream (ffmpeg autorotates while decoding); the sign
            # convention of this field has changed between ffmpeg releases.
            angle = float(side["rotation"])
            break
    if angle is None and "rotate" in video.get("tags", {}):
        angle = float(video["tags"]["rotate"])
    if angle is None:
        return 0
    return round(angle / 90.0) % 4 * 90
