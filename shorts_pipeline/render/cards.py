"""The still images of a ranking video: title and outro cards, rank badges, previews.

Cards are full-frame opaque PNGs; a rank badge is a small transparent PNG cropped to its ink
and returned as an `Overlay` with its place on the frame, because ffmpeg's overlay cost grows
with the overlay's area. All text stays inside `safe_area()`, and every size is a multiple of
the frame's scale, so a 720x1280 card looks like a 1080x1920 one. Files are written to a
temporary name and renamed, so a reader never sees half a PNG.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image, ImageDraw, ImageFilter

from shorts_pipeline.render.errors import MediaError
from shorts_pipeline.render.files import write_atomic
from shorts_pipeline.render.geometry import FRAME_HEIGHT, FRAME_WIDTH, Overlay, safe_area
from shorts_pipeline.render.text import draw_text, fit_text, text_block_size

RGB = tuple[int, int, int]

DEFAULT_ACCENT: RGB = (255, 196, 0)
WHITE: RGB = (255, 255, 255)
MUTED: RGB = (196, 198, 214)
CONTACT_SHEET_MAX_BYTES = 30_000

_TOP_COLOUR: RGB = (26, 28, 48)
_BOTTOM_COLOUR: RGB = (7, 7, 13)


def draw_title_card(
    path: str | Path,
    title: str,
    subtitle: str | None = None,
    size: tuple[int, int] = (FRAME_WIDTH, FRAME_HEIGHT),
    accent: RGB = DEFAULT_ACCENT,
) -> str:
    """Writes the opening card: `subtitle` (e.g. "Top 5") in the accent colour over a bar and
    the title in big bold letters, on a dark gradient. Returns `path`."""
    scale = _scale(size)
    safe = safe_area(*size)
    max_width = safe.width - round(48 * scale)
    image = _background(size, accent)

    blocks: list[_Block] = []
    if subtitle:
        sub_size, sub_lines = fit_text(subtitle, max_width, 2, round(96 * scale), round(48 * scale))
        blocks.append(_TextBlock(sub_lines, sub_size, accent, shadow=True))
        blocks.append(_Gap(round(20 * scale)))
    blocks.append(_Bar(round(150 * scale), round(14 * scale), accent))
    blocks.append(_Gap(round(44 * scale)))
    title_size, title_lines = fit_text(title, max_width, 4, round(132 * scale), round(60 * scale))
    blocks.append(_TextBlock(title_lines, title_size, WHITE, shadow=True))

    _draw_stack(image, blocks, scale, centre_y=safe.top + round(safe.height * 0.45))
    _save_atomic(image.convert("RGB"), str(path), "PNG", compress_level=1)
    return str(path)


def draw_rank_badge(
    path: str | Path,
    rank: int,
    caption: str,
    frame_size: tuple[int, int] = (FRAME_WIDTH, FRAME_HEIGHT),
    accent: RGB = DEFAULT_ACCENT,
) -> Overlay:
    """Writes the "#3" badge with the clip's caption under it as a transparent PNG cropped to
    its ink, and returns where it goes: centred at the top of the safe area."""
    scale = _scale(frame_size)
    safe = safe_area(*frame_size)
    canvas = Image.new("RGBA", (safe.width, safe.height))
    margin = round(16 * scale)  # room for the badge's shadow inside the canvas
    centre_x = safe.width // 2

    label = f"#{rank}"
    badge_height = round(168 * scale)
    label_room = safe.width - 2 * margin - round(0.6 * badge_height)
    number_size, label_lines = fit_text(label, label_room, 1, round(104 * scale), round(40 * scale))
    label_width = text_block_size(label_lines, number_size)[0]
    badge_width = max(badge_height, label_width + round(0.6 * badge_height))
    badge = (
        centre_x - badge_width // 2,
        margin,
        centre_x - badge_width // 2 + badge_width,
        margin + badge_height,
    )
    _draw_badge(canvas, badge, accent, scale)
    draw_text(
        canvas,
        (centre_x, margin + badge_height // 2),
        label_lines,
        number_size,
        fill=_ink_on(accent),
        anchor="mm",
    )

    pad_x, pad_y = round(30 * scale), round(14 * scale)
    caption_size, caption_lines = fit_text(
        caption, safe.width - 2 * (margin + pad_x), 2, round(64 * scale), round(40 * scale)
    )
    if caption_lines:
        text_width, text_height = text_block_size(caption_lines, caption_size)
        top = badge[3] + round(22 * scale)
        plate = (
            centre_x - text_width // 2 - pad_x,
            top,
            centre_x + (text_width + 1) // 2 + pad_x,
            top + text_height + 2 * pad_y,
        )
        _draw_plate(canvas, plate, round(26 * scale))
        draw_text(canvas, (centre_x, top + pad_y), caption_lines, caption_size, anchor="ma")

    box = canvas.getchannel("A").getbbox()
    assert box is not None  # the badge is always drawn
    _save_atomic(canvas.crop(box), str(path), "PNG", compress_level=1)
    return Overlay(
        path=str(path),
        x=safe.left + box[0],
        y=safe.top + box[1],
        width=box[2] - box[0],
        height=box[3] - box[1],
    )


def draw_outro_card(
    path: str | Path,
    title: str,
    lines: Sequence[str] = ("Which one was your favourite?", "Follow for more"),
    size: tuple[int, int] = (FRAME_WIDTH, FRAME_HEIGHT),
    accent: RGB = DEFAULT_ACCENT,
) -> str:
    """Writes the closing card: the video's title, small and muted, then the first of `lines`
    as a big question and the rest as accent-coloured buttons. Returns `path`."""
    scale = _scale(size)
    safe = safe_area(*size)
    max_width = safe.width - round(48 * scale)
    image = _background(size, accent)

    blocks: list[_Block] = []
    title_size, title_lines = fit_text(title, max_width, 2, round(56 * scale), round(36 * scale))
    if title_lines:
        blocks += [_TextBlock(title_lines, title_size, MUTED), _Gap(round(28 * scale))]
        blocks += [_Bar(round(110 * scale), round(10 * scale), accent), _Gap(round(56 * scale))]
    if lines:
        size_0, lines_0 = fit_text(lines[0], max_width, 3, round(104 * scale), round(56 * scale))
        blocks.append(_TextBlock(lines_0, size_0, WHITE, shadow=True))
    for line in lines[1:]:
        pill_size, pill_lines = fit_text(
            line, max_width - round(96 * scale), 2, round(60 * scale), round(36 * scale)
        )
        blocks += [_Gap(round(56 * scale)), _Pill(pill_lines, pill_size, accent)]

    _draw_stack(image, blocks, scale, centre_y=safe.top + round(safe.height * 0.45))
    _save_atomic(image.convert("RGB"), str(path), "PNG", compress_level=1)
    return str(path)


# Chapter accents for explainer slides: distinct, saturated enough to read as a colour on the
# dark background, light enough that dark text on them stays legible.
CHAPTER_ACCENTS: tuple[RGB, ...] = (
    (255, 196, 0),
    (64, 196, 255),
    (255, 112, 146),
    (120, 220, 140),
    (190, 150, 255),
    (255, 150, 70),
)


def draw_scene_slide(
    path: str | Path,
    text: str,
    *,
    chapter: str | None = None,
    index: int = 1,
    total: int = 1,
    accent: RGB = DEFAULT_ACCENT,
    background: str = "gradient",
    size: tuple[int, int] = (FRAME_WIDTH, FRAME_HEIGHT),
) -> str:
    """Writes one explainer slide: the chapter title as a small kicker over an accent bar,
    the scene's on-screen text large and bold, and progress dots, on a gradient (or solid)
    background. Everything sits in the upper part of the safe area: the bottom part is where
    the subtitles go. Returns `path`."""
    scale = _scale(size)
    safe = safe_area(*size)
    max_width = safe.width - round(48 * scale)
    if background == "solid":
        image = Image.new("RGBA", size, _solid_colour(accent))
    else:
        image = _background(size, accent)

    blocks: list[_Block] = []
    if chapter:
        kicker_size, kicker_lines = fit_text(
            chapter, max_width, 2, round(58 * scale), round(36 * scale)
        )
        blocks += [_TextBlock(kicker_lines, kicker_size, accent, shadow=True)]
        blocks += [_Gap(round(24 * scale))]
    blocks += [_Bar(round(120 * scale), round(12 * scale), accent), _Gap(round(48 * scale))]
    if text:
        body_size, body_lines = fit_text(text, max_width, 5, round(112 * scale), round(52 * scale))
        blocks.append(_TextBlock(body_lines, body_size, WHITE, shadow=True))
    # The text block centres a third of the way down the safe area, clear of the subtitles.
    _draw_stack(image, blocks, scale, centre_y=safe.top + round(safe.height * 0.34))
    if total > 1:
        _draw_progress(image, index, total, accent, scale)
    _save_atomic(image.convert("RGB"), str(path), "PNG", compress_level=1)
    return str(path)


def contact_sheet(
    image_paths: Sequence[str | Path],
    out_path: str | Path,
    columns: int = 4,
    thumb_width: int = 120,
) -> str:
    """Writes a small JPEG grid of the images (for the Dagster UI), under ~30 KB."""
    if not image_paths:
        raise ValueError("contact_sheet needs at least one image")
    thumbs = [_thumbnail(str(p), thumb_width, thumb_width * 4) for p in image_paths]
    gap = 4
    cell_height = max(t.height for t in thumbs)
    columns = max(1, min(columns, len(thumbs)))
    rows = -(-len(thumbs) // columns)
    sheet = Image.new(
        "RGB",
        (columns * (thumb_width + gap) + gap, rows * (cell_height + gap) + gap),
        _BOTTOM_COLOUR,
    )
    for index, thumb in enumerate(thumbs):
        row, column = divmod(index, columns)
        x = gap + column * (thumb_width + gap) + (thumb_width - thumb.width) // 2
        y = gap + row * (cell_height + gap) + (cell_height - thumb.height) // 2
        sheet.paste(thumb, (x, y))

    data = _jpeg_under(sheet, CONTACT_SHEET_MAX_BYTES)
    write_atomic(str(out_path), data)
    return str(out_path)


def thumbnail_data_uri(image_path: str, max_width: int = 120, quality: int = 60) -> str:
    """A `data:image/jpeg;base64,...` URI of a small JPEG of the image, for Markdown metadata."""
    thumb = _thumbnail(image_path, max_width, max_width * 2)
    buffer = io.BytesIO()
    thumb.save(buffer, "JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# --- layout ----------------------------------------------------------------------------------


class _Block(Protocol):
    """One item of a card's layout: stacked top to bottom, each centred horizontally."""

    def height(self) -> int: ...

    def draw(self, image: Image.Image, centre_x: int, top: int, scale: float) -> None: ...


@dataclass(frozen=True)
class _Gap:
    size: int

    def height(self) -> int:
        return self.size

    def draw(self, image: Image.Image, centre_x: int, top: int, scale: float) -> None:
        pass


@dataclass(frozen=True)
class _Bar:
    """A short rounded accent line."""

    width: int
    thickness: int
    colour: RGB

    def height(self) -> int:
        return self.thickness

    def draw(self, image: Image.Image, centre_x: int, top: int, scale: float) -> None:
        box = (centre_x - self.width // 2, top, centre_x + self.width // 2, top + self.thickness)
        ImageDraw.Draw(image).rounded_rectangle(box, self.thickness // 2, fill=self.colour)


@dataclass(frozen=True)
class _TextBlock:
    lines: list[str]
    size: int
    colour: RGB
    shadow: bool = False

    def height(self) -> int:
        return text_block_size(self.lines, self.size)[1]

    def draw(self, image: Image.Image, centre_x: int, top: int, scale: float) -> None:
        if self.shadow:
            _draw_text_shadow(image, (centre_x, top), self.lines, self.size, scale)
        draw_text(image, (centre_x, top), self.lines, self.size, fill=self.colour)


@dataclass(frozen=True)
class _Pill:
    """Text on a rounded accent-coloured button."""

    lines: list[str]
    size: int
    colour: RGB

    def height(self) -> int:
        return text_block_size(self.lines, self.size)[1] + 2 * self._padding()[1]

    def draw(self, image: Image.Image, centre_x: int, top: int, scale: float) -> None:
        width, height = text_block_size(self.lines, self.size)
        pad_x, pad_y = self._padding()
        box = (
            centre_x - width // 2 - pad_x,
            top,
            centre_x + (width + 1) // 2 + pad_x,
            top + height + 2 * pad_y,
        )
        radius = min(box[3] - box[1], round(self.size * 1.3)) // 2
        ImageDraw.Draw(image).rounded_rectangle(box, radius, fill=self.colour)
        draw_text(image, (centre_x, top + pad_y), self.lines, self.size, fill=_ink_on(self.colour))

    def _padding(self) -> tuple[int, int]:
        return round(self.size * 0.8), round(self.size * 0.3)


def _draw_stack(image: Image.Image, blocks: list[_Block], scale: float, centre_y: int) -> None:
    """Draws `blocks` top to bottom, centred on the safe area's middle column and on
    `centre_y`, kept inside the safe area."""
    safe = safe_area(*image.size)
    total = sum(block.height() for block in blocks)
    top = max(safe.top, min(centre_y - total // 2, safe.bottom - total))
    centre_x = (safe.left + safe.right) // 2
    for block in blocks:
        block.draw(image, centre_x, top, scale)
        top += block.height()


# --- drawing helpers -------------------------------------------------------------------------


def _scale(size: tuple[int, int]) -> float:
    return min(size[0] / FRAME_WIDTH, size[1] / FRAME_HEIGHT)


def _background(size: tuple[int, int], accent: RGB) -> Image.Image:
    """A dark vertical gradient with a faint glow of the accent colour behind the text."""
    return _cached_background(size, accent).copy()


@functools.lru_cache(maxsize=8)
def _cached_background(size: tuple[int, int], accent: RGB) -> Image.Image:
    width, height = size
    ramp = Image.linear_gradient("L").resize(size, Image.Resampling.BILINEAR)
    image = Image.composite(
        Image.new("RGB", size, _BOTTOM_COLOUR), Image.new("RGB", size, _TOP_COLOUR), ramp
    )
    radius = round(width * 0.9)
    glow = Image.radial_gradient("L").resize((2 * radius, 2 * radius), Image.Resampling.BILINEAR)
    glow = glow.point(lambda v: max(0, 255 - 2 * v) * 40 // 255)  # 0 at the rim, ~16% at centre
    safe = safe_area(width, height)
    centre = ((safe.left + safe.right) // 2, safe.top + round(safe.height * 0.42))
    image.paste(accent, (centre[0] - radius, centre[1] - radius), glow)
    return image.convert("RGBA")


def _draw_text_shadow(
    image: Image.Image, xy: tuple[int, int], lines: list[str], size: int, scale: float
) -> None:
    """A soft dark shadow under a text block, so it lifts off the glow."""
    if not lines:
        return
    width, height = text_block_size(lines, size)
    blur = max(1, round(10 * scale))
    offset = round(6 * scale)
    layer = Image.new("RGBA", (width + 4 * blur, height + 4 * blur))
    draw_text(layer, (layer.width // 2, 2 * blur), lines, size, fill=(0, 0, 0, 170))
    layer = layer.filter(ImageFilter.GaussianBlur(blur))
    x, y = xy[0] - layer.width // 2, xy[1] - 2 * blur + offset
    crop = (max(0, -x), max(0, -y), layer.width, layer.height)
    image.alpha_composite(layer.crop(crop), (max(0, x), max(0, y)))


def _draw_badge(
    image: Image.Image, box: tuple[int, int, int, int], accent: RGB, scale: float
) -> None:
    """A rounded accent-coloured badge with a white rim and a soft shadow."""
    radius = (box[3] - box[1]) // 2
    shadow = Image.new("L", image.size)
    offset = round(5 * scale)
    shifted = (box[0], box[1] + offset, box[2], box[3] + offset)
    ImageDraw.Draw(shadow).rounded_rectangle(shifted, radius, fill=140)
    shadow = shadow.filter(ImageFilter.GaussianBlur(max(1, round(6 * scale))))
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    layer.putalpha(shadow)
    image.alpha_composite(layer)

    draw = ImageDraw.Draw(image)
    rim = max(2, round(7 * scale))
    draw.rounded_rectangle(box, radius, fill=WHITE)
    inner = (box[0] + rim, box[1] + rim, box[2] - rim, box[3] - rim)
    draw.rounded_rectangle(inner, radius - rim, fill=accent)


def _draw_progress(image: Image.Image, index: int, total: int, accent: RGB, scale: float) -> None:
    """A row of dots at the top of the safe area: done and current in the accent colour."""
    safe = safe_area(*image.size)
    dot = max(4, round(14 * scale))
    gap = max(3, round(12 * scale))
    total = min(total, 30)
    width = total * dot + (total - 1) * gap
    x = (safe.left + safe.right - width) // 2
    y = safe.top + round(8 * scale)
    draw = ImageDraw.Draw(image)
    for k in range(1, total + 1):
        fill = accent if k <= index else (90, 92, 110)
        box = (x, y, x + dot, y + dot)
        draw.ellipse(box, fill=fill)
        x += dot + gap


def _solid_colour(accent: RGB) -> RGB:
    """A deep shade of the accent, dark enough for white text."""
    return (accent[0] * 22 // 100 + 8, accent[1] * 22 // 100 + 8, accent[2] * 22 // 100 + 14)


def _draw_plate(image: Image.Image, box: tuple[int, int, int, int], radius: int) -> None:
    """A translucent dark rounded plate that keeps white text readable on any video."""
    layer = Image.new("RGBA", image.size)
    ImageDraw.Draw(layer).rounded_rectangle(box, radius, fill=(0, 0, 0, 165))
    image.alpha_composite(layer)


def _ink_on(background: RGB) -> RGB:
    """Dark text on light colours, white text on dark ones."""
    r, g, b = background
    return (24, 24, 28) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else WHITE


# --- files -----------------------------------------------------------------------------------


def _thumbnail(path: str, max_width: int, max_height: int) -> Image.Image:
    """`path` as an RGB image no larger than max_width x max_height."""
    try:
        with Image.open(path) as source:
            source.draft("RGB", (max_width, max_height))  # JPEGs decode at a smaller scale
            image = source.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise MediaError(f"{path}: cannot read image: {error}") from error
    image.thumbnail((max_width, max_height), Image.Resampling.LANCZOS)
    flat = Image.new("RGB", image.size, _BOTTOM_COLOUR)
    flat.paste(image, mask=image.getchannel("A"))
    return flat


def _jpeg_under(image: Image.Image, max_bytes: int) -> bytes:
    """`image` as a JPEG, at the best quality (then size) that stays under `max_bytes`."""
    while True:
        for quality in (75, 60, 45, 30):
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=quality, optimize=True)
            if buffer.tell() <= max_bytes:
                return buffer.getvalue()
        if image.width < 64:
            return buffer.getvalue()
        image = image.resize(
            (image.width * 3 // 4, image.height * 3 // 4), Image.Resampling.LANCZOS
        )


def _save_atomic(image: Image.Image, path: str, image_format: str, **params: Any) -> None:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    write_atomic(path, buffer.getvalue())
