"""Subtitles for narrated videos: cues timed to the speech, an SRT, and a styled ASS to burn in.

`build_cues` turns each scene's spoken text into cues of at most `max_lines` lines. Lines are
laid out with the same fonts and the same measurement (`text.measure`) the cards use, so a line
is never wider than `max_width` on the frame; they break at spaces for spaced scripts (English,
Korean) and between characters for Chinese and Japanese. A cue ends at a sentence end when it
can, and at a comma rather than mid-phrase when it must break a sentence. Cues are timed from
the TTS engine's word timings when there are any (matched to the subtitle's words letter by
letter, so a stripped emoji or a differently cut word still lands on its neighbours), else in
proportion to the characters within the scene's measured audio.

`write_ass` writes a style that libass draws at the size Pillow measured: libass sizes a font
so that its ascender plus descender (OS/2 winAscent + winDescent) equal the font size, while
Pillow sizes the em square. The ASS font size is therefore the measured size times
(winAscent + winDescent) / unitsPerEm, read from the font file itself — 1.15 for NanumGothic
Bold, which burns within 3 px of Pillow's width (checked in tests/render/test_subtitles.py).
`WrapStyle: 2` keeps libass from wrapping again: our lines are joined with `\\N`. Text is
escaped so that libass shows it as written: braces, `\\N`-like sequences and override tags
typed by a creator are drawn, never obeyed (a backslash in the fallback font the cards use,
since Korean fonts draw U+005C as a won sign).
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import re
import struct
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import ImageFont

from shorts_pipeline.render.files import write_atomic
from shorts_pipeline.render.geometry import FRAME_HEIGHT, FRAME_WIDTH, safe_area
from shorts_pipeline.render.speech_text import spoken_text
from shorts_pipeline.render.text import (
    FontFace,
    _break_pieces,
    _clusters,
    face_for_character,
    find_fonts,
    measure,
)

SUBTITLE_FONT_SIZE = 68  # pixels on the 1080x1920 frame, as Pillow measures it
SUBTITLE_OUTLINE = 6  # black border around the letters, pixels
SUBTITLE_SHADOW = 2  # drop shadow offset, pixels
EDGE_PADDING = 20  # room between the subtitles and the edges of the safe area, pixels
MIN_DISPLAY_SECONDS = 0.6  # a cue shorter than this cannot be read
LINGER_SECONDS = 1.0  # a pause shorter than this keeps the previous cue on screen
MIN_CUE_SPACING = 0.1  # cue starts squeezed by a cut scene stay at least this far apart
HIGHLIGHT_GAP_SECONDS = 0.15  # a pause between words shorter than this keeps the highlight on
HIGHLIGHT_COLOUR = "&H00D7FF&"  # ASS colours are BGR: this is gold (255, 215, 0)

Position = Literal["bottom", "middle"]

_SENTENCE_ENDS = frozenset(".!?。！？…‼⁇⁈⁉")
_CLAUSE_ENDS = frozenset(",;:、，；：")
_CLOSERS = "\"'”’)]}」』）》〉"
_SAFE_FILTER_PATH = re.compile(r"^[A-Za-z0-9_./-]+$")
_WORD_JOINER = "\u2060"


@dataclass(frozen=True)
class SpokenScene:
    """One scene's narration as it sits on the video's timeline.

    `start` is where the scene's audio begins on the timeline and `duration` its measured
    length (seconds). `words` are (word, start, end) relative to the scene's audio, when the
    TTS engine reports them. Cues never pass `end_limit`, the scene's end on the timeline.
    """

    start: float
    duration: float
    text: str
    words: tuple[tuple[str, float, float], ...] = ()
    end_limit: float | None = None


@dataclass(frozen=True)
class CueWord:
    """A word (or, in Chinese/Japanese, a piece of a line) of a cue and when it is heard.

    `line` is the index of the cue line it is on; `space_before` is False for a piece that
    continues the previous one without a space (CJK characters, a word too long for a line).
    """

    text: str
    start: float
    end: float
    line: int
    space_before: bool = True


@dataclass(frozen=True)
class Cue:
    """One subtitle on screen from `start` to `end` (seconds on the video's timeline)."""

    start: float
    end: float
    lines: tuple[str, ...]
    words: tuple[CueWord, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


# --- public API ------------------------------------------------------------------------------


def build_cues(
    scenes: Iterable[SpokenScene],
    *,
    font_size: int = SUBTITLE_FONT_SIZE,
    max_width: int | None = None,
    max_lines: int = 2,
    bold: bool = True,
    stroke_width: int = SUBTITLE_OUTLINE,
    frame: tuple[int, int] = (FRAME_WIDTH, FRAME_HEIGHT),
) -> list[Cue]:
    """The subtitle cues of `scenes`, in order, none overlapping, each inside its scene.

    `max_width` (pixels, outline included) defaults to the safe area's width less
    `EDGE_PADDING` on each side, which is the room `write_ass` gives the text. Scenes must be
    in timeline order and must not overlap; a scene with words but no time raises ValueError.
    """
    if font_size < 1:
        raise ValueError(f"font_size must be at least 1 pixel, not {font_size}")
    if max_lines < 1:
        raise ValueError(f"max_lines must be at least 1, not {max_lines}")
    width = default_max_width(frame) if max_width is None else max_width
    if width < 1:
        raise ValueError(f"max_width must be at least 1 pixel, not {width}")
    layout = _Layout(font_size, width, max_lines, bold, stroke_width)

    cues: list[Cue] = []
    previous_end = -math.inf
    for number, scene in enumerate(scenes, start=1):
        window = _scene_window(scene, number, previous_end)
        previous_end = window[1]
        cues.extend(_scene_cues(scene, number, window, layout))
    return cues


def default_max_width(frame: tuple[int, int] = (FRAME_WIDTH, FRAME_HEIGHT)) -> int:
    """Widest subtitle line on `frame`: the safe area less `EDGE_PADDING` on each side."""
    return safe_area(*frame).width - 2 * EDGE_PADDING


def write_srt(cues: Sequence[Cue], path: str | os.PathLike[str]) -> None:
    """Writes `cues` as a standard SubRip file (UTF-8), atomically."""
    blocks = []
    for index, cue in enumerate(cues, start=1):
        timing = f"{_srt_time(cue.start)} --> {_srt_time(cue.end)}"
        blocks.append(f"{index}\n{timing}\n" + "\n".join(cue.lines) + "\n")
    write_atomic(path, "\n".join(blocks).encode("utf-8"))


def write_ass(
    cues: Sequence[Cue],
    path: str | os.PathLike[str],
    *,
    font_size: int = SUBTITLE_FONT_SIZE,
    highlight_words: bool = True,
    position: Position = "bottom",
    frame: tuple[int, int] = (FRAME_WIDTH, FRAME_HEIGHT),
    max_lines: int = 2,
    bold: bool = True,
    outline: int = SUBTITLE_OUTLINE,
) -> None:
    """Writes `cues` as a styled ASS file for libass to burn in, atomically.

    Pass the `font_size`, `bold` and outline (`stroke_width`) the cues were built with: the
    style uses the same font at the size libass needs to draw what Pillow measured. With
    `highlight_words`, each cue becomes one event per spoken word (that word gold, the rest
    white) and plain events for the pauses, so one cue never has two events on screen at once.
    `max_lines` fixes the top of the block in the "middle" position, so that a one-line cue
    does not jump up and down between two-line ones.
    """
    if position not in ("bottom", "middle"):
        raise ValueError(f"position must be 'bottom' or 'middle', not {position!r}")
    width, height = frame
    area = safe_area(width, height)
    family = subtitle_font_family(bold)
    ass_size = libass_font_size(font_size, bold)
    margin_left = area.left + EDGE_PADDING
    margin_right = width - area.right + EDGE_PADDING
    margin_bottom = height - area.bottom + EDGE_PADDING + outline + SUBTITLE_SHADOW

    prefix = ""
    if position == "middle":
        block_height = max(1, max_lines) * ass_size
        top = (area.top + area.bottom) / 2 - block_height / 2
        centre = (area.left + area.right) / 2
        prefix = f"{{\\an8\\pos({centre:.0f},{top:.0f})}}"

    header = [
        "[Script Info]",
        "; Written by shorts_pipeline.render.subtitles",
        "ScriptType: v4.00+",
        f"PlayResX: {width}",
        f"PlayResY: {height}",
        "WrapStyle: 2",
        "ScaledBorderAndShadow: yes",
        "YCbCr Matrix: TV.709",
        "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
        "BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, "
        "BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding",
        f"Style: Subtitle,{family},{ass_size:.2f},&H00FFFFFF,&H0000D7FF,&H00000000,&H80000000,"
        f"{-1 if bold else 0},0,0,0,100,100,0,0,1,{outline},{SUBTITLE_SHADOW},2,"
        f"{margin_left},{margin_right},{margin_bottom},1",
        "",
        "[Events]",
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
    ]
    backslash_font = _backslash_family(bold)
    events = []
    for cue in cues:
        for start, end, text in _cue_events(cue, highlight_words, backslash_font):
            events.append(
                f"Dialogue: 0,{_ass_time(start)},{_ass_time(end)},Subtitle,,0,0,0,,{prefix}{text}"
            )
    write_atomic(path, ("\n".join(header + events) + "\n").encode("utf-8"))


def ass_filter(
    path: str | os.PathLike[str], *, fonts_dir: str | os.PathLike[str] | None = None
) -> str:
    """The `ass=` filter that burns the ASS file at `path` into a filter graph.

    Filter graphs give `:`, `,`, `;`, `[`, `]`, quotes and backslashes meanings of their own,
    so only plain paths are accepted (letters, digits, `_`, `.`, `/`, `-`): write the file into
    a `tempfile.mkdtemp()` folder. `fonts_dir` (same rule) lets libass load fonts that
    fontconfig does not know, e.g. the folder of the font Pillow measured with.
    """
    expression = f"ass=filename='{_filter_path(path, 'subtitle file')}'"
    if fonts_dir is not None:
        expression += f":fontsdir='{_filter_path(fonts_dir, 'fonts folder')}'"
    return expression


def subtitle_font_face(bold: bool = True) -> FontFace:
    """The font subtitles are measured and drawn with: the first text face of the cards."""
    return find_fonts(bold).text[0]


def subtitle_font_family(bold: bool = True) -> str:
    """Family name of `subtitle_font_face`, as fontconfig and libass look it up."""
    face = subtitle_font_face(bold)
    return _family_name(face.path, face.index)


def libass_font_size(size: float, bold: bool = True) -> float:
    """The ASS `Fontsize` at which libass draws glyphs as large as Pillow's at `size`."""
    face = subtitle_font_face(bold)
    return size * _libass_scale(face.path, face.index)


# --- scenes and windows ----------------------------------------------------------------------


def _scene_window(scene: SpokenScene, number: int, previous_end: float) -> tuple[float, float]:
    """[start, end] on the timeline that the cues of `scene` must stay inside."""
    values = {"start": scene.start, "duration": scene.duration}
    if scene.end_limit is not None:
        values["end_limit"] = scene.end_limit
    for name, value in values.items():
        if not math.isfinite(value):
            raise ValueError(f"scene {number}: {name} must be a finite number, not {value}")
    if scene.start < 0 or scene.duration < 0:
        raise ValueError(
            f"scene {number}: start ({scene.start}) and duration ({scene.duration}) "
            "must not be negative"
        )
    start = scene.start
    if start < previous_end:
        if previous_end - start > 1e-3:
            raise ValueError(
                f"scene {number} starts at {start:.3f} s, before the previous scene ends at "
                f"{previous_end:.3f} s; scenes must be given in timeline order without overlap"
            )
        start = previous_end  # rounding noise between back-to-back scenes
    end = scene.start + scene.duration
    if scene.end_limit is not None:
        end = min(end, scene.end_limit)
    return start, max(start, end)


def _scene_cues(
    scene: SpokenScene, number: int, window: tuple[float, float], layout: _Layout
) -> list[Cue]:
    units = _units(spoken_text(scene.text), layout)
    if not units:
        return []
    if window[1] - window[0] <= 0:
        raise ValueError(
            f"scene {number} has words to show ({scene.text[:40]!r}) but no time to show "
            f"them: it runs from {window[0]:.3f} s to {window[1]:.3f} s; check the scene's "
            "measured audio duration and its end"
        )
    heard = _word_unit_times(units, scene.words, scene.duration) if scene.words else None
    relative = heard if heard is not None else _proportional_times(units, scene.duration)
    times = [
        (_clamp(scene.start + s, *window), _clamp(scene.start + e, *window)) for s, e in relative
    ]
    chunks = _chunks(units, layout)
    spans = _chunk_spans(chunks, times, window, with_word_timings=heard is not None)
    return [
        _make_cue(units[first:stop], times[first:stop], span, layout)
        for (first, stop), span in zip(chunks, spans, strict=True)
    ]


# --- layout: units, lines, chunks ------------------------------------------------------------


@dataclass(frozen=True)
class _Unit:
    """The smallest piece a line may break before: a word, or a CJK character."""

    text: str
    space_before: bool


@dataclass(frozen=True)
class _Layout:
    size: int
    max_width: int
    max_lines: int
    bold: bool
    stroke_width: int

    def width(self, line: str) -> int:
        return measure(line, self.size, self.bold, self.stroke_width)[0]

    def lines(self, units: Sequence[_Unit], max_width: int | None = None) -> list[list[int]]:
        """Greedy lines (unit indices) no wider than `max_width`; a unit wider gets its own."""
        limit = self.max_width if max_width is None else max_width
        lines: list[list[int]] = []
        current = ""
        for index, unit in enumerate(units):
            candidate = _join(current, unit)
            if lines and current and self.width(candidate) <= limit:
                lines[-1].append(index)
                current = candidate
            else:
                lines.append([index])
                current = unit.text
        return lines

    def fits(self, units: Sequence[_Unit]) -> bool:
        return len(self.lines(units)) <= self.max_lines

    def balanced_lines(self, units: Sequence[_Unit]) -> list[list[int]]:
        """Lines as even as the same line count allows: a full line over a lone word reads
        worse than two halves."""
        best = self.lines(units)
        if len(best) < 2:
            return best
        low = max(self.width(unit.text) for unit in units)
        high = self.max_width
        while low <= high:
            width = (low + high) // 2
            candidate = self.lines(units, width)
            if len(candidate) <= len(best):
                best, high = candidate, width - 1
            else:
                low = width + 1
        return best


def _units(text: str, layout: _Layout) -> list[_Unit]:
    """`text` cut where a line may break; a word too wide for a line is cut into the longest
    prefixes that fit, as `text.wrap` does."""
    units: list[_Unit] = []
    for piece, space_before in _break_pieces(text):
        if layout.width(piece) <= layout.max_width:
            units.append(_Unit(piece, space_before))
            continue
        current = ""
        for cluster in _clusters(piece):
            if current and layout.width(current + cluster) > layout.max_width:
                units.append(_Unit(current, space_before))
                current, space_before = "", False
            current += cluster
        if current:
            units.append(_Unit(current, space_before))
    return units


def _chunks(units: Sequence[_Unit], layout: _Layout) -> list[tuple[int, int]]:
    """[first, stop) unit ranges, one per cue: filled up to `max_lines` lines, ended at a
    sentence end, and cut at a comma rather than anywhere when a sentence needs two cues."""
    chunks: list[tuple[int, int]] = []
    first = 0
    while first < len(units):
        stop = first + 1
        while (
            stop < len(units)
            and not _ends_sentence(units[stop - 1].text)
            and layout.fits(units[first : stop + 1])
        ):
            stop += 1
        if stop < len(units) and not _ends_sentence(units[stop - 1].text):
            stop = _clause_break(units, first, stop)
        chunks.append((first, stop))
        first = stop
    return chunks


def _clause_break(units: Sequence[_Unit], first: int, stop: int) -> int:
    """The latest break after a comma in units[first:stop] that keeps at least half of its
    characters in the chunk; `stop` when there is none."""
    if _ends_clause(units[stop - 1].text):
        return stop
    total = sum(_char_count(u.text) for u in units[first:stop])
    kept = sum(_char_count(u.text) for u in units[first:stop])
    for end in range(stop - 1, first, -1):
        kept -= _char_count(units[end].text)
        if kept * 2 < total:
            break
        if _ends_clause(units[end - 1].text):
            return end
    return stop


def _ends_sentence(text: str) -> bool:
    stripped = text.rstrip(_CLOSERS)
    return bool(stripped) and stripped[-1] in _SENTENCE_ENDS


def _ends_clause(text: str) -> bool:
    stripped = text.rstrip(_CLOSERS)
    return bool(stripped) and stripped[-1] in _CLAUSE_ENDS


def _join(line: str, unit: _Unit) -> str:
    if not line:
        return unit.text
    return f"{line} {unit.text}" if unit.space_before else line + unit.text


def _char_count(text: str) -> int:
    return max(1, sum(1 for ch in text if not ch.isspace()))


# --- timing ----------------------------------------------------------------------------------


def _proportional_times(units: Sequence[_Unit], duration: float) -> list[tuple[float, float]]:
    """Unit times spread over the audio in proportion to their (non-space) characters."""
    counts = [_char_count(u.text) for u in units]
    total = sum(counts)
    times = []
    done = 0
    for count in counts:
        times.append((duration * done / total, duration * (done + count) / total))
        done += count
    return times


def _word_unit_times(
    units: Sequence[_Unit], words: Sequence[tuple[str, float, float]], duration: float
) -> list[tuple[float, float]] | None:
    """Unit times (relative to the scene audio) from the TTS engine's word timings.

    The engine's words and ours need not match one to one: it may read "5" as "five", keep an
    emoji we dropped, or cut Korean differently. So both sides are reduced to their letters
    and digits and aligned with difflib; a unit takes the times of the timings its letters
    match, a timing that matched nothing lends its time to the unit before (or after) it, and
    units left without a time share the gap around them by their length. None when nothing
    matches, so that the caller falls back to proportional timing. Timings that are not
    finite numbers are ignored; an end before its start is read as a zero-length word.
    """
    words = [
        (word, start, max(start, end))
        for word, start, end in words
        if math.isfinite(start) and math.isfinite(end)
    ]
    unit_keys, unit_owner = _keys([u.text for u in units])
    timing_keys, timing_owner = _keys([spoken_text(word) for word, _, _ in words])
    if not unit_keys or not timing_keys:
        return None
    matcher = difflib.SequenceMatcher(None, unit_keys, timing_keys, autojunk=False)
    matched: list[set[int]] = [set() for _ in units]
    used = [False] * len(words)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag not in ("equal", "replace"):
            continue
        for offset in range(i2 - i1):
            j = j1 + offset * (j2 - j1) // (i2 - i1)
            matched[unit_owner[i1 + offset]].add(timing_owner[j])
            used[timing_owner[j]] = True
    if not any(used):
        return None

    spans: list[list[float] | None] = [
        [min(words[k][1] for k in ks), max(words[k][2] for k in ks)] if ks else None
        for ks in matched
    ]
    _lend_unmatched_timings(spans, matched, words, used)
    return _monotonic(_fill_gaps(spans, units, duration), duration)


def _keys(texts: Sequence[str]) -> tuple[str, list[int]]:
    """The letters and digits of `texts`, case-folded, and which text each came from."""
    keys: list[str] = []
    owner: list[int] = []
    for index, text in enumerate(texts):
        for ch in unicodedata.normalize("NFKC", text).casefold():
            if unicodedata.category(ch)[0] in ("L", "N"):
                keys.append(ch)
                owner.append(index)
    return "".join(keys), owner


def _lend_unmatched_timings(
    spans: list[list[float] | None],
    matched: Sequence[set[int]],
    words: Sequence[tuple[str, float, float]],
    used: Sequence[bool],
) -> None:
    """Gives the time of each timing that matched no letter to the unit heard before it (or,
    at the start, after it), so a stripped symbol's time is not lost to a blank screen."""
    for k, was_used in enumerate(used):
        if was_used:
            continue
        _, start, end = words[k]
        before = [i for i, ks in enumerate(matched) if ks and max(ks) < k]
        after = [i for i, ks in enumerate(matched) if ks and min(ks) > k]
        if before:
            span = spans[before[-1]]
            assert span is not None
            span[1] = max(span[1], end)
        elif after:
            span = spans[after[0]]
            assert span is not None
            span[0] = min(span[0], start)


def _fill_gaps(
    spans: Sequence[list[float] | None], units: Sequence[_Unit], duration: float
) -> list[tuple[float, float]]:
    """Times for units no timing matched: the gap between their neighbours, by length."""
    result: list[tuple[float, float]] = []
    index = 0
    while index < len(spans):
        span = spans[index]
        if span is not None:
            result.append((span[0], span[1]))
            index += 1
            continue
        stop = index
        while stop < len(spans) and spans[stop] is None:
            stop += 1
        gap_start = result[-1][1] if result else 0.0
        next_span = spans[stop] if stop < len(spans) else None
        gap_end = next_span[0] if next_span is not None else max(duration, gap_start)
        gap_end = max(gap_end, gap_start)
        counts = [_char_count(u.text) for u in units[index:stop]]
        total = sum(counts)
        done = 0
        for count in counts:
            result.append(
                (
                    gap_start + (gap_end - gap_start) * done / total,
                    gap_start + (gap_end - gap_start) * (done + count) / total,
                )
            )
            done += count
        index = stop
    return result


def _monotonic(times: Sequence[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """Times in order, never overlapping, inside [0, duration] (engines overlap words a bit)."""
    result: list[tuple[float, float]] = []
    previous_end = 0.0
    for start, end in times:
        start = _clamp(max(start, previous_end), 0.0, duration)
        end = _clamp(max(end, start), 0.0, duration)
        result.append((start, end))
        previous_end = end
    return result


def _chunk_spans(
    chunks: Sequence[tuple[int, int]],
    times: Sequence[tuple[float, float]],
    window: tuple[float, float],
    *,
    with_word_timings: bool,
) -> list[tuple[float, float]]:
    """[start, end] of each chunk's cue: from its first word to its last, held on through a
    short pause and for at least `MIN_DISPLAY_SECONDS` where the next cue leaves room."""
    window_start, window_end = window
    count = len(chunks)
    # Starts strictly increasing, even when a cut scene squeezes the words together.
    spacing = min(MIN_CUE_SPACING, (window_end - window_start) / count)
    starts = [times[first][0] for first, _ in chunks]
    for i in range(count):
        floor = window_start if i == 0 else starts[i - 1] + spacing
        starts[i] = max(starts[i], floor)
    for i in range(count):
        starts[i] = min(starts[i], window_end - (count - i) * spacing)

    spans = []
    for i, (_, stop) in enumerate(chunks):
        start = starts[i]
        limit = starts[i + 1] if i + 1 < count else window_end
        end = max(times[stop - 1][1], start + MIN_DISPLAY_SECONDS)
        if not with_word_timings or limit - end < LINGER_SECONDS:
            end = limit
        spans.append((start, min(end, limit)))
    return spans


def _make_cue(
    units: Sequence[_Unit],
    times: Sequence[tuple[float, float]],
    span: tuple[float, float],
    layout: _Layout,
) -> Cue:
    start, end = span
    words: list[CueWord] = []
    lines: list[str] = []
    previous_end = start
    for line_index, members in enumerate(layout.balanced_lines(units)):
        line = ""
        for unit_index in members:
            unit = units[unit_index]
            word_start = _clamp(max(times[unit_index][0], previous_end), start, end)
            word_end = _clamp(max(times[unit_index][1], word_start), start, end)
            previous_end = word_end
            # Every unit keeps its space flag, the first of a line too: it tells how the
            # scene's text reads across lines and cues (no space between CJK characters).
            words.append(CueWord(unit.text, word_start, word_end, line_index, unit.space_before))
            line = _join(line, unit)
        lines.append(line)
    return Cue(start, end, tuple(lines), tuple(words))


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


# --- SRT and ASS text ------------------------------------------------------------------------


def _srt_time(seconds: float) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{ms:03d}"


def _ass_time(centiseconds: int) -> str:
    hours, rest = divmod(max(0, centiseconds), 360_000)
    minutes, rest = divmod(rest, 6000)
    secs, cs = divmod(rest, 100)
    return f"{hours}:{minutes:02d}:{secs:02d}.{cs:02d}"


def _centiseconds(seconds: float) -> int:
    """ASS times have centisecond resolution; rounding is monotonic, so order survives it."""
    return max(0, round(seconds * 100))


def _cue_events(
    cue: Cue, highlight: bool, backslash_font: str | None = None
) -> list[tuple[int, int, str]]:
    """(start, end, text) of the events that show `cue`, back to back, never overlapping."""
    cue_start, cue_end = _centiseconds(cue.start), _centiseconds(cue.end)
    if cue_end <= cue_start:
        return []
    if not highlight:
        return [(cue_start, cue_end, _ass_lines(cue, None, backslash_font))]

    segments: list[tuple[int, int, int | None]] = []  # (start, end, highlighted word)
    cursor = cue_start
    for index, word in enumerate(cue.words):
        start = min(max(_centiseconds(word.start), cursor), cue_end)
        end = min(max(_centiseconds(word.end), start), cue_end)
        if end <= start:
            continue
        if start > cursor:
            previous = segments[-1] if segments else None
            short_pause = start - cursor < HIGHLIGHT_GAP_SECONDS * 100
            if previous is not None and previous[2] is not None and short_pause:
                segments[-1] = (previous[0], start, previous[2])
            else:
                segments.append((cursor, start, None))
        segments.append((start, end, index))
        cursor = end
    if cursor < cue_end:
        segments.append((cursor, cue_end, None))
    return [(start, end, _ass_lines(cue, word, backslash_font)) for start, end, word in segments]


def _ass_lines(cue: Cue, highlighted: int | None, backslash_font: str | None = None) -> str:
    """The cue's lines as ASS text, joined with hard breaks, one word coloured."""
    lines: list[str] = ["" for _ in cue.lines]
    for index, word in enumerate(cue.words):
        text = _ass_escape(word.text, backslash_font)
        if index == highlighted:
            text = f"{{\\c{HIGHLIGHT_COLOUR}}}{text}{{\\r}}"
        line = lines[word.line]
        lines[word.line] = f"{line} {text}" if line and word.space_before else line + text
    return "\\N".join(lines)


def _ass_escape(text: str, backslash_font: str | None = None) -> str:
    """`text` shown literally by libass: braces escaped, backslash sequences broken.

    libass reads `\\N`, `\\n` (a line break with WrapStyle 2), `\\h`, `\\{` and `\\}` in plain
    text; an invisible word joiner after each backslash stops every one of them. With
    `backslash_font`, each backslash is drawn in that font (then the style's font again):
    Korean fonts draw U+005C as a won sign, and the cards draw it from the fallback font.
    """
    backslash = "\\" + _WORD_JOINER
    if backslash_font:
        backslash = f"{{\\fn{backslash_font}}}{backslash}{{\\fn}}"
    literal = {"\r": " ", "\n": " ", "{": "\\{", "}": "\\}", "\\": backslash}
    return "".join(literal.get(ch, ch) for ch in text)


def _backslash_family(bold: bool) -> str | None:
    """Family of the font the cards draw `\\` with, when it is not the subtitle font."""
    face = face_for_character("\\", bold)
    if face is None or face == subtitle_font_face(bold):
        return None
    family = _family_name(face.path, face.index)
    return None if any(ch in family for ch in "{}\\") else family


# --- files, fonts and filter paths -----------------------------------------------------------


def _filter_path(path: str | os.PathLike[str], what: str) -> str:
    text = os.fspath(path)
    if not _SAFE_FILTER_PATH.fullmatch(text):
        raise ValueError(
            f"{what} path {text!r} cannot go into an ffmpeg filter graph: use only letters, "
            "digits, '_', '.', '/' and '-' (write it into a tempfile.mkdtemp() folder)"
        )
    return text


@functools.cache
def _family_name(path: str, index: int) -> str:
    family, _style = ImageFont.truetype(path, 20, index=index).getname()
    if not family or "," in family:
        # The ASS style line is comma-separated, and libass finds the font by this name.
        raise ValueError(f"font {path} has no family name usable in an ASS style: {family!r}")
    return family


@functools.cache
def _libass_scale(path: str, index: int) -> float:
    """(winAscent + winDescent) / unitsPerEm of the font: how much larger the ASS size must
    be than Pillow's for the same glyphs. 1.0 when the font has no usable OS/2 table (libass
    then sizes by the em, like Pillow)."""
    with open(path, "rb") as file:
        data = file.read()
    tables = _sfnt_tables(data, index)
    if b"head" not in tables or b"OS/2" not in tables:
        return 1.0
    units_per_em = struct.unpack_from(">H", data, tables[b"head"] + 18)[0]
    win_ascent, win_descent = struct.unpack_from(">HH", data, tables[b"OS/2"] + 74)
    if units_per_em <= 0 or win_ascent + win_descent <= 0:
        return 1.0
    return (win_ascent + win_descent) / units_per_em


def _sfnt_tables(data: bytes, index: int) -> dict[bytes, int]:
    """Table tag -> offset of face `index` in a TrueType/OpenType file or collection."""
    offset = 0
    if data[:4] == b"ttcf":
        count = struct.unpack_from(">I", data, 8)[0]
        if not 0 <= index < count:
            raise ValueError(f"font collection has {count} faces, not face {index}")
        offset = struct.unpack_from(">I", data, 12 + 4 * index)[0]
    table_count = struct.unpack_from(">H", data, offset + 4)[0]
    tables = {}
    for i in range(table_count):
        tag, _checksum, table_offset, _length = struct.unpack_from(
            ">4sIII", data, offset + 12 + 16 * i
        )
        tables[tag] = table_offset
    return tables
