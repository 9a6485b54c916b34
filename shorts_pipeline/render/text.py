"""Fonts and text layout for the cards: find fonts, wrap and fit text, draw it with fallback.

Pillow draws with one font at a time and shows a glyph the font lacks as a box ("tofu"). So a
string is cut into grapheme clusters, each cluster goes to the first font that has its glyph
(the Hangul/Latin UI font, then DejaVu, then colour emoji), and neighbouring clusters with the
same font become one `Run`. A cluster that no font has is left out rather than drawn as a box.

NotoColorEmoji is a bitmap font that FreeType loads only at its strike size (109 px), so emoji
runs are drawn at that size and scaled to the text size.

Every public function accepts any string: control characters are stripped, whitespace is
collapsed, and scripts we have no font for are skipped. Runs are laid out left to right; within
a run Pillow's libraqm (when present) shapes and orders right-to-left text, so an Arabic phrase
reads correctly, but a line mixing directions is not reordered as a whole. Without libraqm,
Arabic is drawn unshaped and emoji sequences (ZWJ families, flags, skin tones) as their parts.
"""

from __future__ import annotations

import functools
import logging
import os
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, features

from shorts_pipeline.render.errors import MediaError

log = logging.getLogger(__name__)

FONT_DIRS: tuple[str, ...] = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.fonts",
    "~/.local/share/fonts",
    "~/Library/Fonts",
    "/Library/Fonts",
    "/System/Library/Fonts",
)

# (file name, face index in a collection), best first. Every one found joins the fallback chain.
_HANGUL_BOLD = (
    ("NanumGothicExtraBold.ttf", 0),
    ("NanumGothicBold.ttf", 0),
    ("NanumSquareRoundB.ttf", 0),
    ("NanumSquareB.ttf", 0),
    ("NotoSansCJK-Bold.ttc", 1),  # face 1 is the Korean one
    ("NotoSansCJKkr-Bold.otf", 0),
    ("NotoSansKR-Bold.otf", 0),
    ("NotoSansKR-Bold.ttf", 0),
    ("AppleGothic.ttf", 0),
)
_HANGUL_REGULAR = (
    ("NanumGothic.ttf", 0),
    ("NanumSquareRoundR.ttf", 0),
    ("NanumSquareR.ttf", 0),
    ("NotoSansCJK-Regular.ttc", 1),
    ("NotoSansCJKkr-Regular.otf", 0),
    ("NotoSansKR-Regular.otf", 0),
    ("NotoSansKR-Regular.ttf", 0),
    ("AppleGothic.ttf", 0),
)
_LATIN_BOLD = (("DejaVuSans-Bold.ttf", 0),)
_LATIN_REGULAR = (("DejaVuSans.ttf", 0),)
_EMOJI = (("NotoColorEmoji.ttf", 0), ("Apple Color Emoji.ttc", 0))
# Bitmap emoji fonts load only at the pixel sizes they carry.
_EMOJI_STRIKES = (109, 160, 137, 128, 96, 64)

INSTALL_HINT = (
    "Install fonts with Hangul, Latin and emoji glyphs: "
    "`sudo apt-get install fonts-nanum fonts-dejavu-core fonts-noto-color-emoji` on Debian/Ubuntu, "
    "or `brew install --cask font-nanum-gothic font-dejavu font-noto-color-emoji` on macOS."
)

LINE_SPACING = 1.3  # line box height as a multiple of the font size
EMOJI_SCALE = 0.92  # emoji height relative to the font size, so they sit with capitals
ELLIPSIS = "…"

_HAS_RAQM = features.check("raqm")
_NOTDEF_PROBE = "\U0010ffff"  # a noncharacter: no font maps it, so it draws glyph 0 (.notdef)
_ZWJ = "\u200d"
_JOINERS = frozenset("\u200c\u200d\ufe0e\ufe0f\u20e3")
_SKIN_TONES = range(0x1F3FB, 0x1F400)
_TAGS = range(0xE0020, 0xE0080)
_REGIONAL_INDICATORS = range(0x1F1E6, 0x1F200)
# Characters below U+1F000 that are emoji by default (Unicode Emoji_Presentation=Yes).
_EMOJI_PRESENTATION_BMP = frozenset(
    (
        *(0x231A, 0x231B, 0x23E9, 0x23EA, 0x23EB, 0x23EC, 0x23F0, 0x23F3, 0x25FD, 0x25FE),
        *(0x2614, 0x2615, 0x267F, 0x2693, 0x26A1, 0x26AA, 0x26AB, 0x26BD, 0x26BE, 0x26C4),
        *(0x26C5, 0x26CE, 0x26D4, 0x26EA, 0x26F2, 0x26F3, 0x26F5, 0x26FA, 0x26FD, 0x2705),
        *(0x270A, 0x270B, 0x2728, 0x274C, 0x274E, 0x2753, 0x2754, 0x2755, 0x2757, 0x2795),
        *(0x2796, 0x2797, 0x27B0, 0x27BF, 0x2B1B, 0x2B1C, 0x2B50, 0x2B55),
        *range(0x2648, 0x2654),  # zodiac signs
    )
)

# Characters that fonts made for a legacy encoding draw as another: the won and yen signs.
_LEGACY_LOOKALIKES = {"\\": ("\u20a9", "\u00a5")}

Align = Literal["left", "center", "right"]
Color = tuple[int, int, int] | tuple[int, int, int, int]


class FontMissingError(MediaError):
    """No usable font is installed."""


@dataclass(frozen=True)
class FontFace:
    """One font file (and face index, for collections)."""

    path: str
    index: int = 0


@dataclass(frozen=True)
class FontSet:
    """The fonts text is drawn with: `text` in fallback order, then the colour emoji font."""

    text: tuple[FontFace, ...]
    emoji: FontFace | None
    emoji_strike: int


@dataclass(frozen=True)
class Run:
    """Neighbouring clusters drawn with one font; `face` is None for colour emoji."""

    text: str
    face: FontFace | None


# --- public API ------------------------------------------------------------------------------


def find_fonts(bold: bool = True) -> FontSet:
    """The installed fonts text is drawn with; raises `FontMissingError` when there are none."""
    return _find_fonts(bold, FONT_DIRS)


def clean_text(text: str) -> str:
    """`text` without control/format characters, with whitespace collapsed to single spaces."""
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if category in ("Zl", "Zp") or ch in "\t\n\r\v\f\x85":
            kept.append(" ")
        elif category in ("Cc", "Cs", "Co") or _is_noncharacter(ch):
            continue
        elif category == "Cf" and ch not in "\u200c\u200d" and ord(ch) not in _TAGS:
            continue  # bidi overrides, BOM, soft hyphen and the like
        else:
            kept.append(ch)
    return " ".join("".join(kept).split())


def face_for_character(ch: str, bold: bool = True) -> FontFace | None:
    """The text font that draws the character `ch` (None: colour emoji or no font has it)."""
    placed = _place_cluster(ch, find_fonts(bold)) if ch and not ch.isspace() else None
    return placed[1] if placed is not None else None


def split_runs(text: str, bold: bool = True) -> list[Run]:
    """`text` (cleaned) cut into runs by the font that has each cluster's glyph."""
    return list(_split_runs(clean_text(text), bold))


def line_height(size: int) -> int:
    """Height in pixels of one line of text at `size`."""
    return round(size * LINE_SPACING)


def measure(text: str, size: int, bold: bool = True, stroke_width: int = 0) -> tuple[int, int]:
    """(width, height) in pixels of `text` drawn on one line, ink and outline included."""
    layout = _layout_line(clean_text(text), size, bold)
    return layout.width + 2 * stroke_width, line_height(size) + 2 * stroke_width


def wrap(
    text: str,
    size: int,
    max_width: int,
    max_lines: int | None = None,
    *,
    bold: bool = True,
    stroke_width: int = 0,
) -> list[str]:
    """`text` broken into lines no wider than `max_width` at `size`.

    Lines break at spaces, and between characters of Chinese/Japanese text, emoji, and words
    too long for a line. With `max_lines`, the last line kept ends in an ellipsis when the text
    does not fit. A single character wider than `max_width` gets a line of its own.
    """
    text = clean_text(text)
    if not text or (max_lines is not None and max_lines < 1):
        return []

    def fits(line: str) -> bool:
        return measure(line, size, bold, stroke_width)[0] <= max_width

    lines: list[str] = []
    current = ""
    for piece, space_before in _break_pieces(text):
        candidate = f"{current}{' ' if space_before else ''}{piece}" if current else piece
        if fits(candidate):
            current = candidate
            continue
        if current:
            lines.append(current)
            current = ""
        for cluster in [piece] if fits(piece) else _clusters(piece):
            if current and not fits(current + cluster):
                lines.append(current)
                current = ""
            current += cluster
    if current:
        lines.append(current)

    if max_lines is not None and len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], _ellipsize(lines[max_lines - 1], fits)]
    return lines


def fit_text(
    text: str,
    max_width: int,
    max_lines: int,
    max_size: int,
    min_size: int,
    *,
    bold: bool = True,
    stroke_width: int = 0,
    balance: bool = True,
) -> tuple[int, list[str]]:
    """The largest size in [min_size, max_size] at which `text` fits, and its lines.

    With `balance`, the lines are made as even as the same line count allows, which reads
    better in a title than a full first line over a short last one. When the text does not
    fit even at `min_size`, it is cut to `max_lines` lines at `min_size`, the last ending in
    an ellipsis.
    """
    min_size = max(1, min(min_size, max_size))

    def lines_at(size: int) -> list[str] | None:
        lines = wrap(text, size, max_width, bold=bold, stroke_width=stroke_width)
        too_wide = any(measure(line, size, bold, stroke_width)[0] > max_width for line in lines)
        return None if len(lines) > max_lines or too_wide else lines

    found: tuple[int, list[str]] | None = None
    if (lines := lines_at(max_size)) is not None:
        found = (max_size, lines)
    else:  # fewer lines as the size shrinks: binary search for the largest size that fits
        low, high = min_size, max_size - 1
        while low <= high:
            mid = (low + high) // 2
            lines = lines_at(mid)
            if lines is None:
                high = mid - 1
            else:
                found, low = (mid, lines), mid + 1
    if found is None:
        return min_size, wrap(
            text, min_size, max_width, max_lines, bold=bold, stroke_width=stroke_width
        )
    size, lines = found
    return size, _balanced(text, size, lines, bold, stroke_width) if balance else lines


def text_block_size(
    lines: Sequence[str], size: int, bold: bool = True, stroke_width: int = 0
) -> tuple[int, int]:
    """(width, height) of the box `draw_text` fills with `lines`."""
    if not lines:
        return 0, 0
    width = max(measure(line, size, bold)[0] for line in lines)
    return width + 2 * stroke_width, len(lines) * line_height(size) + 2 * stroke_width


def draw_text(
    image: Image.Image,
    xy: tuple[int, int],
    lines: Sequence[str],
    size: int,
    *,
    fill: Color = (255, 255, 255),
    stroke_width: int = 0,
    stroke_fill: Color = (0, 0, 0),
    align: Align = "center",
    anchor: str = "ma",
    bold: bool = True,
) -> tuple[int, int, int, int]:
    """Draws `lines` onto the RGBA `image`, emoji in colour; returns the block's box.

    `anchor` places the block the way Pillow anchors text: its first letter says which edge of
    the block `xy` is on horizontally (l, m, r), its second vertically (a = top, m, d = bottom).
    `align` places each line inside the block. Ink is clipped to the returned box.
    """
    if image.mode != "RGBA":
        raise ValueError(f"draw_text draws on RGBA images, not {image.mode}")
    if len(anchor) != 2 or anchor[0] not in "lmr" or anchor[1] not in "amd":
        raise ValueError(f"anchor must be one of l/m/r followed by a/m/d, not {anchor!r}")
    layouts = [_layout_line(clean_text(line), size, bold) for line in lines]
    width, height = text_block_size(lines, size, bold, stroke_width)
    if width == 0 or height == 0:
        return xy[0], xy[1], xy[0], xy[1]
    left = xy[0] - {"l": 0, "m": width // 2, "r": width}[anchor[0]]
    top = xy[1] - {"a": 0, "m": height // 2, "d": height}[anchor[1]]

    outline = Image.new("L", (width, height))
    body = Image.new("L", (width, height))
    emoji = Image.new("RGBA", (width, height))
    inner = width - 2 * stroke_width
    for index, layout in enumerate(layouts):
        slack = inner - layout.width
        x = stroke_width + {"left": 0, "center": slack // 2, "right": slack}[align] - layout.left
        baseline = stroke_width + index * line_height(size) + _baseline_offset(size, bold)
        _draw_line(layout, (x, baseline), size, bold, stroke_width, (outline, body, emoji))

    block = Image.new("RGBA", (width, height))
    if stroke_width:
        block.alpha_composite(_colour_layer(outline, stroke_fill))
    block.alpha_composite(_colour_layer(body, fill))
    block.alpha_composite(emoji)
    _composite_clipped(image, block, (left, top))
    return left, top, left + width, top + height


# --- font discovery --------------------------------------------------------------------------


@functools.cache
def _find_fonts(bold: bool, dirs: tuple[str, ...]) -> FontSet:
    files = _font_files(dirs)
    text_names = (_HANGUL_BOLD + _LATIN_BOLD) if bold else (_HANGUL_REGULAR + _LATIN_REGULAR)
    text = tuple(
        FontFace(files[name.lower()], index) for name, index in text_names if name.lower() in files
    )
    if not text and not bold:
        return _find_fonts(True, dirs)
    if not text:
        raise FontMissingError(f"No font for card text found in {', '.join(dirs)}. {INSTALL_HINT}")
    if not any(_covers(face, "한") for face in text):
        log.warning("No installed font has Hangul; Korean text will be left out. %s", INSTALL_HINT)

    emoji, strike = None, 0
    for name, index in _EMOJI:
        if name.lower() in files:
            face = FontFace(files[name.lower()], index)
            strike = _emoji_strike(face)
            if strike:
                emoji = face
                break
    if emoji is None:
        log.warning("No colour emoji font found; emoji will be left out. %s", INSTALL_HINT)
    return FontSet(text=text, emoji=emoji, emoji_strike=strike)


@functools.cache
def _font_files(dirs: tuple[str, ...]) -> dict[str, str]:
    """Lower-cased file name -> path of every font file under `dirs` (first one wins)."""
    found: dict[str, str] = {}
    for root in dirs:
        for folder, _, names in sorted(os.walk(os.path.expanduser(root))):
            for name in sorted(names):
                if name.lower().endswith((".ttf", ".otf", ".ttc")):
                    found.setdefault(name.lower(), os.path.join(folder, name))
    return found


def _emoji_strike(face: FontFace) -> int:
    for strike in _EMOJI_STRIKES:
        try:
            ImageFont.truetype(face.path, strike, index=face.index)
        except OSError:
            continue
        return strike
    return 0


@functools.lru_cache(maxsize=512)
def _font(face: FontFace, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(face.path, size, index=face.index)


@functools.lru_cache(maxsize=65536)
def _covers(face: FontFace, ch: str) -> bool:
    """Whether `face` has a glyph for `ch`.

    Pillow does not expose the character map, but a missing character is drawn as glyph 0
    (.notdef), so it renders exactly like a character no font has. The basic layout engine is
    used so that no shaping gets in between.
    """
    font = _probe_font(face)
    return _glyph_signature(font, ch) != _glyph_signature(font, _NOTDEF_PROBE)


@functools.cache
def _probe_font(face: FontFace) -> ImageFont.FreeTypeFont:
    size = _emoji_strike(face) if face.path.lower().endswith(("emoji.ttf", "emoji.ttc")) else 40
    return ImageFont.truetype(
        face.path, size or 40, index=face.index, layout_engine=ImageFont.Layout.BASIC
    )


@functools.lru_cache(maxsize=4096)
def _glyph_signature(font: ImageFont.FreeTypeFont, ch: str) -> tuple[float, tuple[int, ...], bytes]:
    """What `font` draws for `ch`: advance, box and pixels."""
    box = tuple(int(v) for v in font.getbbox(ch))
    picture = Image.new("L", (max(1, box[2] - box[0]), max(1, box[3] - box[1])))
    ImageDraw.Draw(picture).text((-box[0], -box[1]), ch, font=font, fill=255)
    return font.getlength(ch), box, picture.tobytes()


# --- clusters and runs -----------------------------------------------------------------------


def _clusters(text: str) -> list[str]:
    """`text` cut into user-perceived characters (base + marks, emoji sequences, flags)."""
    clusters: list[str] = []
    glue_next = False
    for ch in text:
        cp = ord(ch)
        attach = clusters and (
            glue_next
            or ch in _JOINERS
            or cp in _SKIN_TONES
            or cp in _TAGS
            or unicodedata.category(ch) in ("Mn", "Me", "Mc")
            or (
                cp in _REGIONAL_INDICATORS
                and len(clusters[-1]) == 1
                and ord(clusters[-1]) in _REGIONAL_INDICATORS
            )
        )
        if attach:
            clusters[-1] += ch
        else:
            clusters.append(ch)
        glue_next = ch == _ZWJ
    return clusters


@functools.lru_cache(maxsize=4096)
def _split_runs(text: str, bold: bool) -> tuple[Run, ...]:
    fonts = find_fonts(bold)
    clusters = _clusters(text)
    placed = [None if c[0].isspace() else _place_cluster(c, fonts) for c in clusters]
    runs: list[Run] = []
    for index, cluster in enumerate(clusters):
        drawn = placed[index]
        if cluster[0].isspace():
            drawn = (" ", _space_face(placed, index) or fonts.text[0])
        if drawn is None:
            continue
        piece, face = drawn
        if runs and runs[-1].face == face:
            runs[-1] = Run(runs[-1].text + piece, face)
        else:
            runs.append(Run(piece, face))
    return tuple(runs)


def _space_face(
    placed: Sequence[tuple[str, FontFace | None] | None], index: int
) -> FontFace | None:
    """The text font on both sides of the space at `index`, when it is the same one.

    A space inside a run of one font stays in it, so that a right-to-left phrase remains one
    run for the shaper to order; a space between two fonts stands alone.
    """
    before = next((p[1] for p in reversed(placed[:index]) if p is not None), None)
    after = next((p[1] for p in placed[index + 1 :] if p is not None), None)
    return before if before == after else None


def _place_cluster(cluster: str, fonts: FontSet) -> tuple[str, FontFace | None] | None:
    """The characters of `cluster` to draw and the font to draw them with (None = emoji)."""
    base = cluster[0]
    if fonts.emoji is not None and _wants_emoji(cluster) and _covers(fonts.emoji, base):
        return _emoji_text(cluster, fonts.emoji), None
    covering = [face for face in fonts.text if _covers(face, base)]
    # A font that draws the character as another one (a Korean font's won sign for the
    # backslash) is passed over when a later font has the real glyph.
    faithful = [face for face in covering if _draws_itself(face, base)]
    for face in faithful or covering:
        return "".join(ch for ch in cluster if ch == base or _covers(face, ch)), face
    if fonts.emoji is not None and _covers(fonts.emoji, base):
        return _emoji_text(cluster, fonts.emoji), None
    return None


def _draws_itself(face: FontFace, ch: str) -> bool:
    """False when `face` draws `ch` with the glyph of a look-alike it stands for in a legacy
    encoding: Korean fonts put the won sign on U+005C (KS X 1003), Japanese ones the yen
    sign (JIS X 0201), so "C:\\temp" would read "C:₩temp"."""
    lookalikes = _LEGACY_LOOKALIKES.get(ch)
    if not lookalikes:
        return True
    font = _probe_font(face)
    drawn = _glyph_signature(font, ch)
    return not any(_covers(face, o) and _glyph_signature(font, o) == drawn for o in lookalikes)


def _wants_emoji(cluster: str) -> bool:
    if "\ufe0e" in cluster:  # text presentation asked for
        return False
    cp = ord(cluster[0])
    return (
        cp >= 0x1F000
        or cp in _EMOJI_PRESENTATION_BMP
        or "\ufe0f" in cluster
        or any(ord(ch) in _SKIN_TONES for ch in cluster)
    )


def _emoji_text(cluster: str, face: FontFace) -> str:
    if _HAS_RAQM:
        return cluster  # HarfBuzz turns ZWJ sequences, flags and skin tones into one glyph
    # Without shaping, joiners and selectors would draw as blank boxes: keep the pictures.
    return "".join(ch for ch in cluster if ch not in _JOINERS and _covers(face, ch))


def _is_noncharacter(ch: str) -> bool:
    cp = ord(ch)
    return 0xFDD0 <= cp <= 0xFDEF or (cp & 0xFFFE) == 0xFFFE


# --- line breaking ---------------------------------------------------------------------------


def _break_pieces(text: str) -> list[tuple[str, bool]]:
    """Unbreakable pieces of `text`, each with whether a space comes before it."""
    pieces: list[tuple[str, bool]] = []
    for word in text.split(" "):
        clusters = _clusters(word)
        start = 0
        for i in range(1, len(clusters)):
            if _breakable_between(clusters[i - 1], clusters[i]):
                pieces.append(("".join(clusters[start:i]), start == 0))
                start = i
        if clusters:
            pieces.append(("".join(clusters[start:]), start == 0))
    return pieces


def _breakable_between(before: str, after: str) -> bool:
    """Whether a line may break between two clusters with no space between them."""
    if unicodedata.category(after[0]) in ("Pe", "Pf", "Po") or after[0] in "ー々ゝゞヽヾ":
        return False  # closing punctuation and iteration marks stay with what they close
    if unicodedata.category(before[-1]) in ("Ps", "Pi"):
        return False
    return _breaks_anywhere(before) or _breaks_anywhere(after)


def _breaks_anywhere(cluster: str) -> bool:
    """Chinese and Japanese characters, which take a line break between any two."""
    cp = ord(cluster[0])
    return (
        0x2E80 <= cp <= 0x9FFF  # CJK radicals, kana, CJK ideographs
        or 0xF900 <= cp <= 0xFAFF
        or 0xFF66 <= cp <= 0xFF9F  # half-width katakana
        or 0x20000 <= cp <= 0x3FFFF
    )


def _balanced(text: str, size: int, lines: list[str], bold: bool, stroke_width: int) -> list[str]:
    """`lines` rewrapped at the narrowest width that keeps their number."""
    if len(lines) < 2:
        return lines
    low = 1
    high = max(measure(line, size, bold, stroke_width)[0] for line in lines)
    best = lines
    while low <= high:
        width = (low + high) // 2
        candidate = wrap(text, size, width, bold=bold, stroke_width=stroke_width)
        fits = len(candidate) <= len(lines) and all(
            measure(line, size, bold, stroke_width)[0] <= width for line in candidate
        )
        if fits:
            best, high = candidate, width - 1
        else:
            low = width + 1
    return best


def _ellipsize(line: str, fits: Callable[[str], bool]) -> str:
    clusters = _clusters(line)
    while clusters:
        candidate = "".join(clusters).rstrip() + ELLIPSIS
        if fits(candidate):
            return candidate
        clusters.pop()
    return ELLIPSIS


# --- layout and drawing ----------------------------------------------------------------------


@dataclass(frozen=True)
class _PlacedRun:
    run: Run
    x: float  # pen position from the line origin


@dataclass(frozen=True)
class _LineLayout:
    runs: tuple[_PlacedRun, ...]
    left: int  # ink extent relative to the line origin (<= 0)
    right: int

    @property
    def width(self) -> int:
        return self.right - self.left


@functools.lru_cache(maxsize=8192)
def _layout_line(text: str, size: int, bold: bool) -> _LineLayout:
    placed: list[_PlacedRun] = []
    pen = 0.0
    left, right = 0.0, 0.0
    for run in _split_runs(text, bold):
        if run.face is None:
            box, advance = _emoji_extent(run.text, size)
        else:
            font = _font(run.face, size)
            box, advance = font.getbbox(run.text, anchor="ls"), font.getlength(run.text)
        placed.append(_PlacedRun(run, pen))
        if run.text.strip():
            left = min(left, pen + box[0])
            right = max(right, pen + box[2])
        pen += advance
        right = max(right, pen)
    if not text.strip():
        right = left
    return _LineLayout(tuple(placed), int(left // 1), -int(-right // 1))


def _emoji_extent(text: str, size: int) -> tuple[tuple[float, ...], float]:
    """Ink box (relative to the pen on the baseline) and advance of an emoji run at `size`."""
    fonts = find_fonts()
    assert fonts.emoji is not None
    font = _font(fonts.emoji, fonts.emoji_strike)
    scale = _emoji_scale(size, fonts.emoji_strike)
    box = font.getbbox(text, anchor="ls")
    return tuple(v * scale for v in box), font.getlength(text) * scale


def _emoji_scale(size: int, strike: int) -> float:
    return size * EMOJI_SCALE / strike / 1.17  # the Noto strike's ink is 1.17 em tall


@functools.lru_cache(maxsize=256)
def _baseline_offset(size: int, bold: bool) -> int:
    """Baseline distance from the top of a line box, centring capitals and Hangul in the box."""
    ascent = _cap_height(size, bold)
    return round((line_height(size) + ascent) / 2)


@functools.lru_cache(maxsize=256)
def _cap_height(size: int, bold: bool) -> float:
    face = find_fonts(bold).text[0]
    probe = "H한" if _covers(face, "한") else "H"
    # Hangul rises a little above capitals; 0.92 of its height sits between the two.
    return -_font(face, size).getbbox(probe, anchor="ls")[1] * 0.92


def _draw_line(
    layout: _LineLayout,
    origin: tuple[int, int],
    size: int,
    bold: bool,
    stroke_width: int,
    layers: tuple[Image.Image, Image.Image, Image.Image],
) -> None:
    """Draws one line: outline and body as masks, emoji in colour, each on its own layer."""
    outline, body, emoji = layers
    x0, baseline = origin
    draw_outline, draw_body = ImageDraw.Draw(outline), ImageDraw.Draw(body)
    for placed in layout.runs:
        run = placed.run
        x = x0 + placed.x
        if run.face is None:
            picture = _emoji_picture(run.text, size)
            y = baseline - round(_cap_height(size, bold) / 2) - picture.height // 2
            position = (round(x), y)
            if stroke_width:
                halo = picture.getchannel("A").filter(ImageFilter.MaxFilter(2 * stroke_width + 1))
                _paste_mask(outline, halo, position)
            _composite_clipped(emoji, picture, position)
            continue
        font = _font(run.face, size)
        if stroke_width:
            draw_outline.text(
                (x, baseline), run.text, font=font, fill=255, anchor="ls",
                stroke_width=stroke_width, stroke_fill=255,
            )  # fmt: skip
        draw_body.text((x, baseline), run.text, font=font, fill=255, anchor="ls")


@functools.lru_cache(maxsize=512)
def _emoji_picture(text: str, size: int) -> Image.Image:
    """Colour emoji drawn at the font's strike size and scaled to `size`, cropped to the ink."""
    fonts = find_fonts()
    assert fonts.emoji is not None
    font = _font(fonts.emoji, fonts.emoji_strike)
    x0, y0, x1, y1 = (int(v) for v in font.getbbox(text, anchor="ls"))
    picture = Image.new("RGBA", (max(1, x1 - x0), max(1, y1 - y0)))
    ImageDraw.Draw(picture).text((-x0, -y0), text, font=font, anchor="ls", embedded_color=True)
    scale = _emoji_scale(size, fonts.emoji_strike)
    target = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    return picture.resize(target, Image.Resampling.LANCZOS)


def _colour_layer(mask: Image.Image, colour: Color) -> Image.Image:
    alpha = colour[3] if len(colour) == 4 else 255
    layer = Image.new("RGBA", mask.size, (*colour[:3], 0))
    layer.putalpha(mask if alpha == 255 else mask.point(lambda v: v * alpha // 255))
    return layer


def _composite_clipped(base: Image.Image, top: Image.Image, xy: tuple[int, int]) -> None:
    """`base.alpha_composite(top, xy)` with the part of `top` outside `base` left out."""
    x, y = xy
    crop = (
        max(0, -x),
        max(0, -y),
        min(top.width, base.width - x),
        min(top.height, base.height - y),
    )
    if crop[0] >= crop[2] or crop[1] >= crop[3]:
        return
    base.alpha_composite(top.crop(crop), (x + crop[0], y + crop[1]))


def _paste_mask(base: Image.Image, mask: Image.Image, xy: tuple[int, int]) -> None:
    """Merges `mask` into the L image `base` at `xy` (per-pixel maximum)."""
    x, y = xy
    crop = (
        max(0, -x),
        max(0, -y),
        min(mask.width, base.width - x),
        min(mask.height, base.height - y),
    )
    if crop[0] >= crop[2] or crop[1] >= crop[3]:
        return
    box = (x + crop[0], y + crop[1], x + crop[2], y + crop[3])
    base.paste(ImageChops.lighter(base.crop(box), mask.crop(crop)), box[:2])
