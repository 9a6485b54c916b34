"""What a finished video really is: the facts the quality checks judge.

`inspect_video` reads the container with ffprobe (size, pixels, rates, codec, profile, each
stream's duration, where the index sits) and, with `scan=True`, decodes the file once more in
ONE ffmpeg pass: the picture, scaled down to `SCAN_WIDTH` pixels wide, goes through
`blackdetect` and `freezedetect`; the sound goes through `ebur128` (loudness, true peak) and
`silencedetect`. Everything is parsed from that pass's log. Without `scan`, only the sound is
decoded, for its loudness.

`subtitle_boxes` reads an ASS file the way libass lays it out (style margins, alignment,
`\\pos`) and measures each line with the font the subtitles were laid out with, so the safe
area can be checked against what is burned in.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from shorts_pipeline.render.ffmpeg_run import run_ffmpeg
from shorts_pipeline.render.loudness import (
    EBUR128_FILTER,
    Loudness,
    measure_loudness,
    parse_ebur128_summary,
)
from shorts_pipeline.render.probe import probe_json
from shorts_pipeline.render.subtitles import libass_font_size
from shorts_pipeline.render.text import measure

# The picture is analysed at this width: black and frozen stretches show at any size, and a
# small copy costs little next to decoding the full frames.
SCAN_WIDTH = 270
# Decoding is most of the scan's cost; without the deblocking filter it is ~20 % cheaper, and
# neither a black frame nor a repeated one changes for it.
SCAN_DECODE = ("-skip_loop_filter:v", "all")
BLACK_MIN_SECONDS = 0.5
BLACK_PIXEL_THRESHOLD = 0.10  # a pixel darker than 10 % of the luma range counts as black
FREEZE_MIN_SECONDS = 1.0
FREEZE_NOISE_DB = -60.0  # frames closer than this (mean difference) count as the same
SILENCE_MIN_SECONDS = 1.0
SILENCE_NOISE_DB = -50.0  # quieter than this is silence (the mix sits at −14 LUFS)


@dataclass(frozen=True)
class Stretch:
    """A stretch of the video's timeline, in seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class ContentScan:
    """What one decode of the whole file found: black, frozen and silent stretches (at
    least `BLACK_MIN_SECONDS`, `FREEZE_MIN_SECONDS` and `SILENCE_MIN_SECONDS` long)."""

    black: tuple[Stretch, ...]
    frozen: tuple[Stretch, ...]
    silent: tuple[Stretch, ...]
    seconds: float  # wall time of the pass


@dataclass(frozen=True)
class VideoFacts:
    width: int
    height: int
    sar: str
    fps: float  # average frame rate
    duration: float  # the container's
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
    base_fps: float = 0.0  # ffprobe's r_frame_rate: equal to `fps` when the rate is constant
    video_seconds: float | None = None  # the video stream's own duration
    audio_seconds: float | None = None  # the audio stream's own duration
    scan: ContentScan | None = None


def inspect_video(path: str | Path, measure_audio: bool = True, scan: bool = False) -> VideoFacts:
    """The facts of the video at `path`. `measure_audio` decodes the sound for its loudness;
    `scan` decodes picture and sound together once (loudness included) for `ContentScan`."""
    data = probe_json(path)
    streams = data.get("streams", [])
    video: dict = next((s for s in streams if s.get("codec_type") == "video"), {})
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = float(data.get("format", {}).get("duration", 0.0))
    loudness = None
    content = None
    if scan:
        loudness, content = _scan(
            Path(path), duration, has_video=bool(video), has_audio=audio is not None
        )
    elif audio is not None and measure_audio:
        loudness = measure_loudness(path)
    return VideoFacts(
        width=int(video.get("width", 0)),
        height=int(video.get("height", 0)),
        sar=str(video.get("sample_aspect_ratio", "1:1")),
        fps=round(_rate(video.get("avg_frame_rate")), 3),
        duration=duration,
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
        loudness=loudness,
        base_fps=round(_rate(video.get("r_frame_rate")), 3),
        video_seconds=_seconds(video.get("duration")),
        audio_seconds=_seconds(audio.get("duration")) if audio else None,
        scan=content,
    )


def facts_to_json(facts: VideoFacts) -> dict[str, Any]:
    """`facts` as plain data (JSON), to keep the result of a scan beside the file it judged."""
    return dataclasses.asdict(facts)


def facts_from_json(data: dict[str, Any]) -> VideoFacts:
    """The `VideoFacts` that `facts_to_json` made; raises KeyError/TypeError if it is not one."""
    values = dict(data)
    if values.get("loudness") is not None:
        values["loudness"] = Loudness(**values["loudness"])
    if values.get("scan") is not None:
        scan = values["scan"]
        values["scan"] = ContentScan(
            black=tuple(Stretch(**s) for s in scan["black"]),
            frozen=tuple(Stretch(**s) for s in scan["frozen"]),
            silent=tuple(Stretch(**s) for s in scan["silent"]),
            seconds=scan["seconds"],
        )
    return VideoFacts(**values)


def _scan(
    path: Path, duration: float, *, has_video: bool, has_audio: bool
) -> tuple[Loudness | None, ContentScan]:
    """One ffmpeg pass over the file: picture (scaled down) and sound analysed together."""
    branches, maps = [], []
    if has_video:
        branches.append(
            f"[0:v:0]scale={SCAN_WIDTH}:-2:flags=fast_bilinear,"
            f"blackdetect=d={BLACK_MIN_SECONDS}:pix_th={BLACK_PIXEL_THRESHOLD},"
            f"freezedetect=n={FREEZE_NOISE_DB}dB:d={FREEZE_MIN_SECONDS}[scanv]"
        )
        maps += ["-map", "[scanv]"]
    if has_audio:
        branches.append(
            f"[0:a:0]{EBUR128_FILTER},"
            f"silencedetect=n={SILENCE_NOISE_DB}dB:d={SILENCE_MIN_SECONDS}[scana]"
        )
        maps += ["-map", "[scana]"]
    if not branches:
        return None, ContentScan((), (), (), 0.0)
    started = time.monotonic()
    log = run_ffmpeg(
        [
            *(SCAN_DECODE if has_video else ()),
            "-i",
            str(path),
            "-filter_complex",
            ";".join(branches),
            *maps,
            "-f",
            "null",
            "-",
        ],
        what=f"quality scan of {path.name}",
    )
    seconds = time.monotonic() - started
    loudness = parse_ebur128_summary(log) if has_audio else None
    # A stretch still open when the file ends is reported without its end.
    end = duration
    return loudness, ContentScan(
        black=_black(log),
        frozen=_paired(log, r"freeze_start: *(\S+)", r"freeze_end: *(\S+)", end),
        silent=_paired(log, r"silence_start: *(\S+)", r"silence_end: *(\S+)", end),
        seconds=round(seconds, 3),
    )


def _black(log: str) -> tuple[Stretch, ...]:
    found = re.findall(r"black_start:\s*(\S+)\s+black_end:\s*(\S+)", log)
    return tuple(Stretch(float(a), float(b)) for a, b in found)


def _paired(
    log: str, start_pattern: str, end_pattern: str, end_of_file: float
) -> tuple[Stretch, ...]:
    """Stretches from start/end lines in log order; a start with no end runs to the end."""
    events = sorted(
        [(m.start(), "start", float(m.group(1))) for m in re.finditer(start_pattern, log)]
        + [(m.start(), "end", float(m.group(1))) for m in re.finditer(end_pattern, log)]
    )
    stretches, opened = [], None
    for _, kind, value in events:
        if kind == "start":
            opened = value
        elif opened is not None:
            stretches.append(Stretch(opened, value))
            opened = None
    if opened is not None:
        stretches.append(Stretch(opened, max(opened, end_of_file)))
    return tuple(stretches)


def _rate(text: str | None) -> float:
    try:
        return float(Fraction(text)) if text and text != "0/0" else 0.0
    except (ValueError, ZeroDivisionError):
        return 0.0


def _seconds(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


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


# --- subtitles as burned in ------------------------------------------------------------------

Box = tuple[int, int, int, int]  # x, y, width, height in frame pixels


def subtitle_boxes(ass_path: str | Path) -> list[Box]:
    """Where libass draws each distinct subtitle of the ASS file at `ass_path`, outline and
    shadow included: from the event's style (size, margins, alignment, outline) or its
    `\\an`/`\\pos` override, each line measured with the subtitles' font."""
    text = Path(ass_path).read_text(encoding="utf-8")
    play_x = int(_field(text, "PlayResX") or 384)
    play_y = int(_field(text, "PlayResY") or 288)
    styles = _styles(text)
    boxes: list[Box] = []
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    for style_name, body in _events(text):
        style = styles.get(style_name)
        if style is None:
            continue
        plain = re.sub(r"(?<!\\)\{[^}]*\}", "", body)  # override blocks: colours, position
        placed = tuple(re.findall(r"\\(?:pos\([^)]*\)|an\d)", body))
        key = (style_name, plain, placed)
        if key in seen:
            continue  # one event per highlighted word: the same text in the same place
        seen.add(key)
        lines = [_unescape(line) for line in plain.split("\\N")]
        if not any(line.strip() for line in lines):
            continue
        boxes.append(_event_box(style, body, lines, play_x, play_y))
    return boxes


@dataclass(frozen=True)
class _Style:
    size: float
    bold: bool
    outline: float
    shadow: float
    alignment: int
    margin_l: int
    margin_r: int
    margin_v: int


def _event_box(style: _Style, body: str, lines: list[str], width: int, height: int) -> Box:
    alignment = style.alignment
    if an := re.search(r"\\an([1-9])", body):
        alignment = int(an.group(1))
    # The layout size Pillow measured: libass draws its font size over ascent + descent.
    pillow_size = max(1, round(style.size / libass_font_size(1.0, style.bold)))
    text_w = max(measure(line, pillow_size, style.bold)[0] for line in lines)
    text_h = style.size * len(lines)
    column = (alignment - 1) % 3  # 0 left, 1 centre, 2 right
    row = (alignment - 1) // 3  # 0 bottom, 1 middle, 2 top
    if pos := re.search(r"\\pos\(\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\)", body):
        anchor_x, anchor_y = float(pos.group(1)), float(pos.group(2))
    else:
        anchor_x = (
            style.margin_l,
            (style.margin_l + width - style.margin_r) / 2,
            width - style.margin_r,
        )[column]
        anchor_y = (height - style.margin_v, height / 2, style.margin_v)[row]
    left = anchor_x - text_w * column / 2
    top = anchor_y - text_h * (2 - row) / 2
    pad = style.outline
    x0, y0 = left - pad, top - pad
    x1, y1 = left + text_w + pad + style.shadow, top + text_h + pad + style.shadow
    return (int(x0 // 1), int(y0 // 1), round(x1 - x0 + 0.5), round(y1 - y0 + 0.5))


def _field(text: str, name: str) -> str | None:
    match = re.search(rf"^{name}:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else None


def _styles(text: str) -> dict[str, _Style]:
    fmt: list[str] = []
    styles = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line.lower()
        elif section == "[v4+ styles]" and line.startswith("Format:"):
            fmt = [f.strip() for f in line[len("Format:") :].split(",")]
        elif section == "[v4+ styles]" and line.startswith("Style:") and fmt:
            values = dict(zip(fmt, (v.strip() for v in line[6:].split(",")), strict=False))
            styles[values["Name"]] = _Style(
                size=float(values["Fontsize"]),
                bold=values.get("Bold", "0") not in ("0", ""),
                outline=float(values.get("Outline", 0)),
                shadow=float(values.get("Shadow", 0)),
                alignment=int(values.get("Alignment", 2)),
                margin_l=int(values.get("MarginL", 0)),
                margin_r=int(values.get("MarginR", 0)),
                margin_v=int(values.get("MarginV", 0)),
            )
    return styles


def _events(text: str) -> list[tuple[str, str]]:
    """(style, text) of every Dialogue line; the text field may itself contain commas."""
    fmt: list[str] = []
    events = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Format:") and "Text" in line:
            fmt = [f.strip() for f in line[len("Format:") :].split(",")]
        elif line.startswith("Dialogue:") and fmt:
            values = line[len("Dialogue:") :].split(",", len(fmt) - 1)
            fields = dict(zip(fmt, values, strict=False))
            events.append((fields.get("Style", "").strip(), fields.get("Text", "")))
    return events


def _unescape(line: str) -> str:
    return line.replace("\\{", "{").replace("\\}", "}").replace("\\h", " ")
