"""Subtitle cues, SRT and ASS, checked on real fonts and on frames that real libass burned."""

from __future__ import annotations

import itertools
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageFont

from shorts_pipeline.render.ffmpeg_run import run_ffmpeg
from shorts_pipeline.render.geometry import safe_area
from shorts_pipeline.render.speech_text import spoken_text, spoken_words
from shorts_pipeline.render.subtitles import (
    EDGE_PADDING,
    MIN_DISPLAY_SECONDS,
    SUBTITLE_OUTLINE,
    SUBTITLE_SHADOW,
    Cue,
    SpokenScene,
    ass_filter,
    build_cues,
    default_max_width,
    libass_font_size,
    subtitle_font_face,
    write_ass,
    write_srt,
)
from shorts_pipeline.render.text import draw_text, find_fonts, measure

FONT_SIZE = 68
MAX_WIDTH = default_max_width()


def width(line: str) -> int:
    """A line's width as the subtitles measure it: real font, outline included."""
    return measure(line, FONT_SIZE, True, SUBTITLE_OUTLINE)[0]


def scene_window(scene: SpokenScene) -> tuple[float, float]:
    end = scene.start + scene.duration
    return scene.start, end if scene.end_limit is None else min(end, scene.end_limit)


def joined_text(cues: list[Cue]) -> str:
    """The cues' words put back together the way the scene's text reads."""
    text = ""
    for cue in cues:
        for word in cue.words:
            text += (" " if text and word.space_before else "") + word.text
    return text


def assert_well_formed(cues: list[Cue], scenes: list[SpokenScene], max_lines: int = 2) -> None:
    """Every guarantee `build_cues` gives, checked on its output."""
    previous_end = float("-inf")
    position = 0
    for scene in scenes:
        own = build_cues([scene], max_lines=max_lines)
        mine = cues[position : position + len(own)]
        position += len(own)
        assert mine == own, "a scene's cues depend on the scenes around it"
        start, end = scene_window(scene)
        assert joined_text(mine) == spoken_text(scene.text)
        for cue in mine:
            assert start - 1e-9 <= cue.start < cue.end <= end + 1e-9
            assert cue.start >= previous_end - 1e-9, "cues overlap or go backwards"
            previous_end = cue.end
            assert 1 <= len(cue.lines) <= max_lines
            assert all(line.strip() for line in cue.lines) and cue.words
            for index, line in enumerate(cue.lines):
                on_line = [w for w in cue.words if w.line == index]
                rebuilt = ""
                for word in on_line:
                    rebuilt += (" " if rebuilt and word.space_before else "") + word.text
                assert rebuilt == line
                assert width(line) <= MAX_WIDTH or len(on_line) == 1
            word_end = cue.start
            for word in cue.words:
                assert word_end - 1e-9 <= word.start <= word.end <= cue.end + 1e-9
                word_end = word.end
    assert position == len(cues)


# --- timing ----------------------------------------------------------------------------------

WORDS = [
    "football",
    "skills",
    "are",
    "the",
    "art,",
    "of",
    "control.",
    "Really?",
    "축구",
    "대표팀은",
    "응원해",
    "주세요!",
    "人工智能正在改變世界。",
    "東京は大きな都市です",
    "🚀",
    "🔥🔥",
    "**bold**",
    "https://example.com/x",
    "#tag",
    "—",
    "{brace}",
    "back\\slash",
    "supercalifragilisticexpialidociousandmorelettersthanfit",
]


@st.composite
def scenes_strategy(draw: st.DrawFn) -> list[SpokenScene]:
    scenes = []
    clock = 0.0
    for _ in range(draw(st.integers(1, 3))):
        tokens = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=18))
        duration = draw(st.floats(0.3, 12.0))
        start = clock + draw(st.floats(0.0, 1.5))
        end_limit = None
        if draw(st.booleans()):
            end_limit = start + duration * draw(st.floats(0.2, 1.5))
        words: tuple[tuple[str, float, float], ...] = ()
        if draw(st.booleans()):
            # Engine timings: one per raw token (emoji and URLs too), some lost, some late.
            points = sorted(
                draw(
                    st.lists(
                        st.floats(0, duration * 1.2),
                        min_size=2 * len(tokens),
                        max_size=2 * len(tokens),
                    )
                )
            )
            kept = draw(st.lists(st.booleans(), min_size=len(tokens), max_size=len(tokens)))
            words = tuple(
                (token, points[2 * i], points[2 * i + 1])
                for i, token in enumerate(tokens)
                if kept[i]
            )
        scene = SpokenScene(start, duration, " ".join(tokens), words, end_limit)
        scenes.append(scene)
        clock = scene_window(scene)[1]
    return scenes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes_strategy(), st.integers(1, 3))
def test_cues_stay_in_their_scene_in_order_without_overlap_and_keep_every_word(
    scenes: list[SpokenScene], max_lines: int
) -> None:
    cues = build_cues(scenes, max_lines=max_lines)

    assert_well_formed(cues, scenes, max_lines)
    with tempfile.TemporaryDirectory() as folder:
        ass = Path(folder) / "subtitles.ass"
        write_ass(cues, ass, max_lines=max_lines)
        lines = read_ass(ass)["Events"]
    events = [dialogue(line) for line in lines if line.startswith("Dialogue:")]
    times = [(ass_seconds(start), ass_seconds(end)) for start, end, _ in events]
    assert all(start < end for start, end in times)
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(times))


def test_word_timings_start_each_cue_on_its_first_word() -> None:
    text = "First we warm up. Then we practise the rabona, the elastico and the rainbow flick."
    timings = []
    clock = 0.3
    for word in text.split():
        timings.append((word, clock, clock + 0.25))
        clock += 0.35
    scene = SpokenScene(start=10.0, duration=clock + 0.5, text=text, words=tuple(timings))

    cues = build_cues([scene])

    assert_well_formed(cues, [scene])
    assert cues[0].lines == ("First we warm up.",)  # a sentence end ends the cue
    assert cues[0].start == pytest.approx(10.3)
    index = 0
    for cue in cues:
        heard = timings[index]
        assert cue.words[0].text == heard[0]
        assert cue.start == pytest.approx(10.0 + heard[1])
        assert cue.words[0].start == pytest.approx(10.0 + heard[1])
        index += len(cue.words)
    assert cues[-1].lines[-1].endswith("flick.")


def test_a_symbol_the_subtitles_drop_lends_its_time_to_the_word_before() -> None:
    words = (("Hello", 0.0, 0.5), ("🚀", 0.5, 0.9), ("world", 0.9, 1.3))
    scene = SpokenScene(0.0, 1.5, "Hello 🚀 world", words)

    (cue,) = build_cues([scene])

    assert [w.text for w in cue.words] == ["Hello", "world"]
    assert cue.words[0].start == pytest.approx(0.0)
    assert cue.words[0].end == pytest.approx(0.9)
    assert cue.words[1].start == pytest.approx(0.9)


def test_a_word_the_engine_says_differently_keeps_the_engines_time_for_it() -> None:
    words = (("Top", 0.0, 0.4), ("five", 0.5, 0.9), ("goals", 1.0, 1.4))
    scene = SpokenScene(0.0, 1.5, "Top 5 goals", words)

    (cue,) = build_cues([scene])

    assert [(w.text, round(w.start, 2), round(w.end, 2)) for w in cue.words] == [
        ("Top", 0.0, 0.4),
        ("5", 0.5, 0.9),
        ("goals", 1.0, 1.4),
    ]


def test_a_word_the_engine_did_not_time_takes_the_time_between_its_neighbours() -> None:
    words = (("Top", 0.0, 0.4), ("goals", 1.0, 1.4))
    scene = SpokenScene(0.0, 1.5, "Top 5 goals", words)

    (cue,) = build_cues([scene])

    assert [(w.text, round(w.start, 2), round(w.end, 2)) for w in cue.words] == [
        ("Top", 0.0, 0.4),
        ("5", 0.4, 1.0),
        ("goals", 1.0, 1.4),
    ]


def test_without_word_timings_cues_share_the_audio_by_their_characters() -> None:
    text = "One two three four five six seven. Eight nine ten eleven twelve thirteen fourteen."
    scene = SpokenScene(start=2.0, duration=8.0, text=text)

    cues = build_cues([scene])

    assert_well_formed(cues, [scene])
    assert cues[0].start == pytest.approx(2.0) and cues[-1].end == pytest.approx(10.0)
    for before, after in itertools.pairwise(cues):
        assert after.start == pytest.approx(before.end)  # no blank between cues
    chars = [sum(len(w.text) for w in c.words) for c in cues]
    for cue, count in zip(cues, chars, strict=True):
        assert cue.end - cue.start == pytest.approx(8.0 * count / sum(chars))


def test_a_short_cue_stays_long_enough_to_read_when_there_is_room() -> None:
    words = (("Go!", 0.0, 0.1), ("Now", 2.0, 2.3), ("we", 2.3, 2.5), ("play.", 2.5, 2.9))
    scene = SpokenScene(0.0, 3.0, "Go! Now we play.", words)

    cues = build_cues([scene])

    assert [c.lines for c in cues] == [("Go!",), ("Now we play.",)]
    assert cues[0].end - cues[0].start >= MIN_DISPLAY_SECONDS
    assert cues[0].end <= cues[1].start


def test_a_scene_cut_short_squeezes_its_cues_inside_its_end() -> None:
    text = "This narration runs much longer than the scene that carries it. " * 3
    scene = SpokenScene(start=1.0, duration=12.0, text=text, end_limit=4.0)

    cues = build_cues([scene])

    assert_well_formed(cues, [scene])
    assert cues[-1].end <= 4.0


def test_overlapping_scenes_and_scenes_without_time_are_refused() -> None:
    with pytest.raises(ValueError, match=r"scene 2 starts at 1\.000 s"):
        build_cues([SpokenScene(0.0, 2.0, "one"), SpokenScene(1.0, 2.0, "two")])
    with pytest.raises(ValueError, match="no time to show"):
        build_cues([SpokenScene(0.0, 0.0, "words but no audio")])
    assert build_cues([SpokenScene(0.0, 0.0, "🚀 🔥")]) == []  # nothing to say is fine


# --- layout ----------------------------------------------------------------------------------


def test_markdown_urls_and_emoji_never_reach_the_cues() -> None:
    scene = SpokenScene(0.0, 4.0, "**Step 1:** see https://x.io 🚀 — it's *fast* 🔥")

    cues = build_cues([scene])

    text = " ".join(line for cue in cues for line in cue.lines)
    assert text == "Step 1: see it's fast"
    assert [w.text for c in cues for w in c.words] == spoken_words(spoken_text(scene.text))


@pytest.mark.parametrize(
    "text",
    [
        "Football skills are the art of controlling the ball with style, speed and a lot of "
        "patience, and every professional player practises them for many hours every week",
        "대한민국 축구 대표팀은 오늘 밤 아주 중요한 경기를 치릅니다 모두 함께 끝까지 응원해 주세요",
    ],
)
def test_spaced_scripts_break_at_spaces_never_wider_than_the_frame_allows(text: str) -> None:
    scene = SpokenScene(0.0, 10.0, text)

    cues = build_cues([scene])

    assert_well_formed(cues, [scene])
    assert len(cues) >= 2 and any(len(c.lines) == 2 for c in cues)
    assert [w.text for c in cues for w in c.words] == text.split()
    assert all(width(line) <= MAX_WIDTH for c in cues for line in c.lines)


def test_chinese_breaks_between_characters() -> None:
    text = "人工智能正在改變世界各國的經濟與社會生活方式而且速度越來越快"
    scene = SpokenScene(0.0, 6.0, text)

    cues = build_cues([scene], max_width=420)

    assert "".join(line for c in cues for line in c.lines) == text
    assert sum(len(c.lines) for c in cues) >= 3
    assert all(
        measure(line, FONT_SIZE, True, SUBTITLE_OUTLINE)[0] <= 420 for c in cues for line in c.lines
    )
    assert all(len(c.lines) <= 2 for c in cues)
    assert all(not w.space_before for c in cues for w in c.words[1:])


def test_a_word_too_long_for_a_line_is_cut_into_pieces_that_fit() -> None:
    word = "Supercalifragilisticexpialidocious" * 2
    scene = SpokenScene(0.0, 3.0, word)

    cues = build_cues([scene])

    assert "".join(line for c in cues for line in c.lines) == word
    assert sum(len(c.lines) for c in cues) >= 2
    assert all(width(line) <= MAX_WIDTH for c in cues for line in c.lines)
    assert joined_text(cues) == word


def test_a_sentence_too_long_for_one_cue_breaks_after_a_comma() -> None:
    text = (
        "When the ball arrives at your feet, keep your head up and look for the next pass "
        "before anyone reaches you"
    )
    plain = text.replace(",", "")

    cues = build_cues([SpokenScene(0.0, 6.0, text)])
    uncut = build_cues([SpokenScene(0.0, 6.0, plain)])

    assert [w.text for w in cues[0].words][-2:] == ["your", "feet,"]
    assert len(uncut[0].words) > len(cues[0].words)  # without the comma it fills the cue


# --- files -----------------------------------------------------------------------------------

SRT_BLOCK = re.compile(
    r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})\n((?:.+\n)+)"
)


def parse_srt(text: str) -> list[tuple[int, float, float, list[str]]]:
    blocks = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        match = SRT_BLOCK.fullmatch(block if block.endswith("\n") else block + "\n")
        assert match, f"not an SRT block: {block!r}"
        g = match.groups()
        start = int(g[1]) * 3600 + int(g[2]) * 60 + int(g[3]) + int(g[4]) / 1000
        end = int(g[5]) * 3600 + int(g[6]) * 60 + int(g[7]) + int(g[8]) / 1000
        blocks.append((int(g[0]), start, end, g[9].rstrip("\n").split("\n")))
    return blocks


def narrated_scenes() -> list[SpokenScene]:
    return [
        SpokenScene(0.0, 3.5, "Welcome to the **top five** football skills 🔥. Let's go!"),
        SpokenScene(3.7, 3.0, "대한민국 축구 대표팀을 응원해 주세요!"),
        SpokenScene(3725.0, 2.0, "A cue past the first hour, with {braces} and a back\\slash."),
    ]


def test_srt_round_trips_with_indices_and_millisecond_timestamps(tmp_path: Path) -> None:
    cues = build_cues(narrated_scenes())
    path = tmp_path / "out" / "subtitles.srt"

    write_srt(cues, path)

    raw = path.read_bytes()
    assert raw.decode("utf-8")  # UTF-8, Hangul included
    parsed = parse_srt(raw.decode("utf-8"))
    assert [p[0] for p in parsed] == list(range(1, len(cues) + 1))
    for (_, start, end, lines), cue in zip(parsed, cues, strict=True):
        assert start == pytest.approx(cue.start, abs=0.0006)
        assert end == pytest.approx(cue.end, abs=0.0006)
        assert lines == list(cue.lines)
    assert "01:02:05," in raw.decode()
    assert not list(path.parent.glob(".tmp-*"))  # the temporary file was renamed


def read_ass(path: Path) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections[current] = []
        elif line.strip() and not line.startswith(";"):
            sections[current].append(line)
    return sections


def dialogue(line: str) -> tuple[str, str, str]:
    fields = line.removeprefix("Dialogue: ").split(",", 9)
    return fields[1], fields[2], fields[9]


def ass_seconds(stamp: str) -> float:
    hours, minutes, seconds = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@pytest.mark.parametrize("highlight", [False, True])
def test_ass_has_one_style_in_the_measured_font_and_one_event_at_a_time(
    tmp_path: Path, highlight: bool
) -> None:
    cues = build_cues(narrated_scenes())
    path = tmp_path / "subtitles.ass"

    write_ass(cues, path, highlight_words=highlight)

    sections = read_ass(path)
    assert list(sections) == ["Script Info", "V4+ Styles", "Events"]
    info = dict(line.split(": ", 1) for line in sections["Script Info"])
    assert info["PlayResX"] == "1080" and info["PlayResY"] == "1920"
    assert info["WrapStyle"] == "2" and info["ScaledBorderAndShadow"] == "yes"
    styles = [line for line in sections["V4+ Styles"] if line.startswith("Style:")]
    assert len(styles) == 1
    style = styles[0].removeprefix("Style: ").split(",")
    face = find_fonts().text[0]
    assert style[1] == ImageFont.truetype(face.path, 20, index=face.index).getname()[0]
    assert float(style[2]) == pytest.approx(libass_font_size(FONT_SIZE), abs=0.01)
    assert style[7] == "-1"  # bold
    events = [dialogue(line) for line in sections["Events"] if line.startswith("Dialogue:")]
    if highlight:
        # Proportional timing: the words of a cue fill it, one event per word.
        assert len(events) == sum(len(c.words) for c in cues)
        assert all(text.count("{\\c&H00D7FF&}") == 1 for _, _, text in events)
    else:
        assert len(events) == len(cues)
        assert [text.count("\\N") + 1 for _, _, text in events] == [len(c.lines) for c in cues]
    times = [(ass_seconds(a), ass_seconds(b)) for a, b, _ in events]
    assert all(a < b for a, b in times)
    assert all(b1 <= a2 for (_, b1), (a2, _) in itertools.pairwise(times))
    last = events[-1][2]
    assert "\\{braces\\}" in last
    # The backslash is broken by a word joiner, and drawn in the font that has a real one.
    assert libass_plain(last).endswith("back\\slash.")


def test_ass_highlight_leaves_pauses_between_words_plain(tmp_path: Path) -> None:
    words = (("Go", 0.0, 0.3), ("left", 1.0, 1.3), ("now.", 1.3, 1.6))
    cues = build_cues([SpokenScene(0.0, 2.0, "Go left now.", words)])
    path = tmp_path / "subtitles.ass"

    write_ass(cues, path)

    texts = [dialogue(line)[2] for line in read_ass(path)["Events"] if line.startswith("Dialogue")]
    assert texts == [
        "{\\c&H00D7FF&}Go{\\r} left now.",
        "Go left now.",
        "Go {\\c&H00D7FF&}left{\\r} now.",
        "Go left {\\c&H00D7FF&}now.{\\r}",
        "Go left now.",
    ]


def test_ass_filter_takes_only_paths_a_filter_graph_cannot_misread() -> None:
    assert ass_filter("/tmp/abc/subs.ass") == "ass=filename='/tmp/abc/subs.ass'"
    assert (
        ass_filter("/tmp/abc/subs.ass", fonts_dir="/usr/share/fonts")
        == "ass=filename='/tmp/abc/subs.ass':fontsdir='/usr/share/fonts'"
    )
    for bad in ["/tmp/a b.ass", "/tmp/x:y.ass", "/tmp/it's.ass", "/tmp/[0:v].ass", "C:\\x.ass", ""]:
        with pytest.raises(ValueError, match="filter graph"):
            ass_filter(bad)


def test_libass_size_factor_is_the_fonts_win_metrics_over_its_em() -> None:
    face = subtitle_font_face()
    if not face.path.endswith("NanumGothicBold.ttf"):
        pytest.skip(f"measured for NanumGothic Bold, the subtitle font here is {face.path}")
    assert libass_font_size(68) == pytest.approx(78.2)  # (920 + 230) / 1000 = 1.15


# --- burned in by real libass ----------------------------------------------------------------

BACKGROUND = (128, 128, 128)  # grey, so that the black outline and shadow count as ink


@pytest.fixture
def filter_dir() -> Iterator[Path]:
    """A folder whose path an ffmpeg filter graph can take as it is."""
    folder = Path(tempfile.mkdtemp(prefix="subs-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def burn(cues: list[Cue], folder: Path, times: list[float], **ass_options) -> list[Image.Image]:
    """Frames at `times` of a grey 1080x1920 video with the cues burned in by libass."""
    ass = folder / "subtitles.ass"
    write_ass(cues, ass, **ass_options)
    fps = 10
    picks = "+".join(f"eq(n\\,{round(t * fps)})" for t in times)
    run_ffmpeg(
        [
            "-f", "lavfi", "-i", f"color=c=0x808080:s=1080x1920:r={fps}:d={max(times) + 0.5}",
            "-vf", f"{ass_filter(str(ass))},select='{picks}'",
            "-fps_mode", "passthrough", "-pix_fmt", "rgb24", str(folder / "frame-%d.png"),
        ],
        what="burning test subtitles",
    )  # fmt: skip
    return [Image.open(folder / f"frame-{i}.png").convert("RGB") for i in range(1, len(times) + 1)]


def ink_box(image: Image.Image) -> tuple[int, int, int, int]:
    """Box of every pixel that is not the background: letters, outline and shadow."""
    background = Image.new("RGB", image.size, BACKGROUND)
    changed = ImageChops.difference(image, background).convert("L")
    box = changed.point(lambda v: 255 if v > 24 else 0).getbbox()
    assert box is not None, "nothing was drawn"
    return box


def pillow_rendering(lines: tuple[str, ...]) -> Image.Image:
    """The lines as the cards draw them with Pillow: the reference for what libass shows."""
    image = Image.new("RGBA", (1080, 400), (*BACKGROUND, 255))
    draw_text(image, (540, 200), lines, FONT_SIZE, stroke_width=SUBTITLE_OUTLINE, anchor="mm")
    return image.convert("RGB")


def white_pixels(image: Image.Image) -> int:
    return sum(1 for r, g, b in image.getdata() if min(r, g, b) > 200)


def yellow_pixels(image: Image.Image) -> int:
    return sum(1 for r, g, b in image.getdata() if r > 200 and g > 150 and b < 90)


@pytest.mark.slow
@pytest.mark.parametrize("position", ["bottom", "middle"])
def test_burned_subtitles_sit_in_the_safe_area_at_the_measured_size(
    filter_dir: Path, position: str
) -> None:
    english = (
        "Controlling the ball with style and speed takes practice, "
        "and every professional player practises it every single day of the week."
    )
    scenes = [
        SpokenScene(0.0, 4.0, english),
        SpokenScene(4.0, 1.0, "대한민국 축구 대표팀을 모두 함께 응원해 주세요"),
    ]
    cues = build_cues(scenes, max_lines=2)
    first, korean = cues[0], cues[-1]
    assert korean.start >= 4.0 and len(first.lines) == 2
    middles = [(first.start + first.end) / 2, (korean.start + korean.end) / 2]

    frames = burn(cues, filter_dir, middles, position=position)

    area = safe_area()
    for frame, cue in zip(frames, (first, korean), strict=True):
        left, top, right, bottom = ink_box(frame)
        assert area.left <= left and right <= area.right, (left, right)
        assert area.top <= top and bottom <= area.bottom, (top, bottom)
        measured = max(width(line) for line in cue.lines)
        drawn = right - left
        # libass draws the size Pillow measured: within a few pixels, shadow included.
        assert drawn <= MAX_WIDTH + SUBTITLE_OUTLINE + SUBTITLE_SHADOW
        assert abs(drawn - measured) <= 0.03 * measured + SUBTITLE_SHADOW, (drawn, measured)
        centre = (left + right) / 2
        assert abs(centre - (area.left + area.right) / 2) <= 12
        if position == "bottom":
            assert bottom <= area.bottom - EDGE_PADDING + SUBTITLE_SHADOW
            assert bottom >= area.bottom - EDGE_PADDING - 40  # right above the platform UI
        else:
            middle = (area.top + area.bottom) / 2
            assert top < middle < bottom
    # The spoken word is gold, the others white.
    assert yellow_pixels(frames[0]) > 200 and yellow_pixels(frames[1]) > 200
    # Hangul is drawn with its glyphs, not as boxes: as much ink as Pillow's NanumGothic.
    for frame, cue in zip(frames, (first, korean), strict=True):
        libass_ink = white_pixels(frame) + yellow_pixels(frame)
        pillow_ink = white_pixels(pillow_rendering(cue.lines))
        assert 0.8 * pillow_ink <= libass_ink <= 1.25 * pillow_ink, (libass_ink, pillow_ink)


# --- issue 7: any text, hostile text ---------------------------------------------------------

WORD_JOINER = "\u2060"


def libass_plain(event_text: str) -> str:
    """The text libass shows for an ASS event: override blocks `{...}` removed, `\\{` and `\\}`
    shown as braces, `\\N` and `\\n` as line breaks, `\\h` as a hard space (libass's rules
    for WrapStyle 2); the word joiner draws nothing."""
    out: list[str] = []
    i = 0
    while i < len(event_text):
        ch = event_text[i]
        if ch == "\\" and i + 1 < len(event_text) and event_text[i + 1] in "{}Nnh":
            out.append(
                {"N": "\n", "n": "\n", "h": "\u00a0"}.get(event_text[i + 1], event_text[i + 1])
            )
            i += 2
        elif ch == "{":
            end = event_text.find("}", i)
            i = len(event_text) if end < 0 else end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out).replace(WORD_JOINER, "")


HOSTILE_LINES = [
    '$(rm -rf ~); echo "x" | tee',
    "{0} %s %(x)s {__class__}",
    "{\\an8}{\\fs200}{\\c&H0000FF&}override tags as text",
    "a\\Nb \\n c\\h d \\{ e \\} f \\\\ g",
    "<script>alert(1)</script>",
    "Skills: 'best' [0:v], a;b \\ c=d",
    "{unclosed brace and } a lone closer",
]
any_line = st.one_of(st.text(max_size=80), st.sampled_from(HOSTILE_LINES))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(any_line, min_size=1, max_size=3),
    durations=st.lists(st.floats(0.5, 6.0), min_size=3, max_size=3),
    highlight=st.booleans(),
)
def test_any_text_gives_well_formed_cues_that_libass_shows_literally(
    texts: list[str], durations: list[float], highlight: bool
) -> None:
    scenes, clock = [], 0.0
    for text, duration in zip(texts, durations, strict=False):
        scenes.append(SpokenScene(clock, duration, text))
        clock += duration

    cues = build_cues(scenes)

    assert_well_formed(cues, scenes)
    with tempfile.TemporaryDirectory() as folder:
        ass = Path(folder) / "subtitles.ass"
        write_ass(cues, ass, highlight_words=highlight)
        lines = read_ass(ass)["Events"]
    events = [dialogue(line) for line in lines if line.startswith("Dialogue:")]
    shown = [libass_plain(text) for _, _, text in events]
    # Each event shows its cue's lines exactly (several events per cue when highlighting).
    grouped = [text for text, _ in itertools.groupby(shown)]
    expected = [text for text, _ in itertools.groupby(cue.text for cue in cues)]
    assert grouped == expected
    for start, end, _ in events:
        assert any(
            c.start - 0.006 <= ass_seconds(start) < ass_seconds(end) <= c.end + 0.006 for c in cues
        )


def test_hostile_lines_reach_the_srt_and_the_ass_as_written(tmp_path: Path) -> None:
    scenes = [SpokenScene(2.0 * i, 2.0, text) for i, text in enumerate(HOSTILE_LINES)]
    cues = build_cues(scenes)
    srt, ass = tmp_path / "s.srt", tmp_path / "s.ass"

    write_srt(cues, srt)
    write_ass(cues, ass, highlight_words=False)

    srt_text = [" ".join(lines) for _, _, _, lines in parse_srt(srt.read_text("utf-8"))]
    events = [dialogue(line)[2] for line in read_ass(ass)["Events"] if line.startswith("Dialogue")]
    assert [libass_plain(e).replace("\n", " ") for e in events] == srt_text
    # A word too wide for a line is cut across lines, so spaces are left out of the match.
    shown = "".join(srt_text).replace(" ", "")
    assert shown == "".join(spoken_text(text) for text in HOSTILE_LINES).replace(" ", "")
    assert "{\\an8}{\\fs200}" in shown  # spoken_text keeps them: they are shown


@pytest.mark.slow
def test_libass_burns_braces_backslashes_and_tags_as_plain_text(filter_dir: Path) -> None:
    plain = SpokenScene(0.0, 2.0, "Plain words {0} shown")
    tricky = SpokenScene(2.0, 2.0, "{\\an8}{\\fs200} a\\Nb {0}")
    cues = build_cues([plain, tricky])
    assert [len(c.lines) for c in cues] == [1, 1]

    frames = burn(cues, filter_dir, [1.0, 3.0], highlight_words=False)

    area = safe_area()
    (_, p_top, _, p_bottom), (left, top, right, bottom) = map(ink_box, frames)
    measured = width(cues[1].lines[0])
    # Drawn as measured (not eaten), on one line of the same height (no \N, no \fs200), at
    # the bottom of the safe area (no \an8), and the backslashes drawn as backslashes.
    assert abs((right - left) - measured) <= 0.03 * measured + SUBTITLE_SHADOW, (right, left)
    assert bottom == pytest.approx(p_bottom, abs=3) and top == pytest.approx(p_top, abs=8)
    assert bottom > (area.top + area.bottom) / 2
    assert cues[1].lines[0] == "{\\an8}{\\fs200} a\\Nb {0}"
