"""Font discovery, fallback, wrapping and drawing of card text, checked on real renderings."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageDraw, ImageFont, features

from shorts_pipeline.render import text
from shorts_pipeline.render.errors import MediaError
from shorts_pipeline.render.text import (
    FontMissingError,
    clean_text,
    draw_text,
    find_fonts,
    fit_text,
    measure,
    split_runs,
    text_block_size,
    wrap,
)

SAMPLE_WORDS = [
    "hello",
    "Top",
    "5",
    "축구",
    "묘기",
    "대한민국의",
    "日本語の文章",
    "漢字",
    "。",
    "⚽",
    "🔥",
    "👨\u200d👩\u200d👧",
    "🇰🇷",
    "👍🏽",
    "❤️",
    "supercalifragilisticexpialidocious",
    "https://example.com/a/very/long/path",
    "مرحبا",
    "Ünïcödé",
    "(",
    ")",
    "!?",
    "…",
]
mixed_text = st.lists(
    st.tuples(st.sampled_from(SAMPLE_WORDS), st.sampled_from(["", " ", "  "])), max_size=30
).map(lambda parts: "".join(word + sep for word, sep in parts))

NASTY_INPUTS = [
    "",
    "   ",
    "../../etc/passwd",
    "🔥🔥🔥",
    "مرحبا بالعالم",
    "x" * 300,
    "축구 " * 100,
    "\"quotes\" 'single' <b>html</b> & amp;",
    "a\x00b\x1b[31mc\u202ed\ufeffe\ud800",
    "\u0301\u0301 leading combining marks",
    "Z̸̡̢̛̗̘̙̜̝̞̟̠̣̤̥̦̩̪̫̬̭̮̯̰̱̲̳̹̺̻̼͇͈͉͍͎̀́̂̃̄̅̆̇̈̉̊̋̌̍̎̏̐̑̒̓̔̽̾̿̀́͂̓̈́͆͊͋͌̕̚ͅ͏͓͔͕͖͙͚͐͑͒͗͛ͣͤͥͦͧͨͩͪͫͬͭͮ͘͜͟͢͝͞͠͡ͅalgo",
    "\U000e0067\U000e0062 tags alone \u200d\ufe0f",
    "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f Scotland",
    "ﷺ ﷽ wide ligatures",
    "\U0010ffff\ufffe noncharacters",
]


def coloured_pixels(image: Image.Image) -> int:
    """Opaque pixels whose channels differ a lot: colour, not white/black/grey text."""
    return sum(1 for r, g, b, a in image.getdata() if a > 200 and max(r, g, b) - min(r, g, b) > 80)


def render(lines: list[str], size: int = 64, **kwargs) -> Image.Image:
    width, height = text_block_size(lines, size, stroke_width=kwargs.get("stroke_width", 0))
    image = Image.new("RGBA", (max(1, width), max(1, height)))
    draw_text(image, (0, 0), lines, size, anchor="la", **kwargs)
    return image


def test_finds_a_hangul_font_a_latin_font_and_a_colour_emoji_font() -> None:
    fonts = find_fonts()

    assert fonts.text, "no text font"
    assert any("DejaVuSans-Bold" in face.path for face in fonts.text)
    assert fonts.emoji is not None and fonts.emoji_strike > 0
    assert find_fonts() is fonts  # cached


def test_missing_fonts_raise_an_error_that_says_what_to_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(text, "FONT_DIRS", (str(tmp_path),))

    with pytest.raises(FontMissingError) as raised:
        find_fonts()

    assert isinstance(raised.value, MediaError)
    message = str(raised.value)
    for package in ("fonts-nanum", "fonts-dejavu-core", "fonts-noto-color-emoji", "brew"):
        assert package in message


def test_hangul_is_drawn_with_a_font_that_has_its_glyphs_not_tofu() -> None:
    runs = split_runs("축구")
    assert len(runs) == 1 and runs[0].face is not None
    tofu_font = ImageFont.truetype(runs[0].face.path, 64)

    chuk, gu = render(["축"]), render(["구"])

    # A font without the glyph draws the same .notdef box for every character.
    assert chuk.getbbox() and gu.getbbox()
    assert ImageChops.difference(chuk, gu).getbbox() is not None
    tofu = Image.new("L", (200, 200))
    ImageDraw.Draw(tofu).text((10, 10), "\U0010ffff", font=tofu_font, fill=255)
    chuk_ink = chuk.getchannel("A").crop(chuk.getbbox())
    tofu_ink = tofu.crop(tofu.getbbox())
    assert chuk_ink.size != tofu_ink.size or ImageChops.difference(chuk_ink, tofu_ink).getbbox()


def test_latin_falls_back_to_dejavu_where_the_hangul_font_has_no_glyph() -> None:
    runs = split_runs("축구 ❤ ب")

    faces = [run.face.path if run.face else "emoji" for run in runs if run.text.strip()]
    assert "DejaVuSans-Bold.ttf" in faces[-1]  # Arabic is not in the Hangul font


def test_a_right_to_left_phrase_stays_one_run_and_keeps_the_space_after_it() -> None:
    runs = split_runs("مرحبا بالعالم 日本語")

    assert runs[0].text == "مرحبا بالعالم"  # one run, so the shaper orders its words
    assert runs[1].text.startswith(" ")


def test_emoji_draw_in_colour() -> None:
    image = render(["⚽🔥"])

    assert coloured_pixels(image) > 500


def test_text_without_emoji_draws_no_colour() -> None:
    image = render(["축구 Top 5"], fill=(255, 255, 255), stroke_width=4)

    assert coloured_pixels(image) == 0


def test_variation_selector_turns_a_text_heart_into_a_colour_one() -> None:
    assert coloured_pixels(render(["❤"])) == 0
    assert coloured_pixels(render(["❤\ufe0f"])) > 300


def test_selectors_and_joiners_take_no_room_of_their_own() -> None:
    assert measure("A\ufe0fB", 64) == measure("AB", 64)
    assert measure("축\u200d구", 64) == measure("축구", 64)
    one_emoji = measure("😀", 64)[0]
    assert measure("❤️", 64)[0] == pytest.approx(one_emoji, abs=2)
    if features.check("raqm"):  # shaping draws a ZWJ family, a flag, a skin tone as one glyph
        for sequence in ("👨\u200d👩\u200d👧", "🇰🇷", "👍🏽"):
            assert measure(sequence, 64)[0] == pytest.approx(one_emoji, abs=2)


def test_characters_no_font_has_are_left_out_not_drawn_as_boxes() -> None:
    assert measure("\u0378\u0379", 64)[0] == 0
    assert render(["\u0378"]).getbbox() is None
    assert measure("A\u0378B", 64) == measure("AB", 64)


def test_control_and_format_characters_are_stripped() -> None:
    assert clean_text("a\x00b\x1bc\u202ed\ufeffe\u200bf\ud800") == "abcdef"
    assert clean_text("  two\n\tlines \u2028 here ") == "two lines here"
    assert clean_text("👨\u200d👩") == "👨\u200d👩"  # the joiner of an emoji sequence stays


@pytest.mark.parametrize("value", NASTY_INPUTS)
def test_any_input_measures_wraps_and_draws(value: str) -> None:
    size, lines = fit_text(value, 600, 3, 80, 30)

    assert len(lines) <= 3
    assert all(measure(line, size)[0] <= 600 for line in lines)
    image = Image.new("RGBA", (700, 400))
    box = draw_text(image, (350, 0), lines, size, stroke_width=3)
    assert box[0] >= 0 and box[2] <= 700


def test_arabic_draws_glyphs() -> None:
    assert render(["مرحبا بالعالم"]).getbbox() is not None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=mixed_text,
    size=st.integers(min_value=16, max_value=90),
    max_width=st.integers(min_value=150, max_value=900),
    stroke_width=st.integers(min_value=0, max_value=6),
)
def test_wrapped_lines_never_exceed_the_width_and_keep_every_character(
    value: str, size: int, max_width: int, stroke_width: int
) -> None:
    lines = wrap(value, size, max_width, stroke_width=stroke_width)

    for line in lines:
        assert line == line.strip() and line
        assert measure(line, size, stroke_width=stroke_width)[0] <= max_width, line
    assert "".join(lines).replace(" ", "") == clean_text(value).replace(" ", "")


@settings(max_examples=60, deadline=None)
@given(value=st.text(max_size=120), size=st.integers(min_value=8, max_value=60))
def test_wrap_and_draw_accept_any_unicode(value: str, size: int) -> None:
    lines = wrap(value, size, 400, 3)

    assert len(lines) <= 3
    image = Image.new("RGBA", (500, 300))
    draw_text(image, (250, 150), lines, size, anchor="mm", stroke_width=2)


def test_cjk_text_without_spaces_breaks_between_characters() -> None:
    lines = wrap("日本語の文章はスペースなしで折り返されます。", 60, 400)

    assert len(lines) > 1
    assert all(measure(line, 60)[0] <= 400 for line in lines)
    assert not any(line.startswith("。") for line in lines)


def test_spaced_text_breaks_at_spaces() -> None:
    lines = wrap("the quick brown fox jumps over the lazy dog", 60, 500)

    words = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"]
    assert [word for line in lines for word in line.split()] == words


def test_a_word_longer_than_a_line_is_broken_inside() -> None:
    lines = wrap("supercalifragilisticexpialidocious", 80, 400)

    assert len(lines) > 1 and "".join(lines) == "supercalifragilisticexpialidocious"


def test_max_lines_ends_the_last_line_with_an_ellipsis() -> None:
    lines = wrap("one two three four five six seven eight nine ten", 60, 300, max_lines=2)

    assert len(lines) == 2 and lines[-1].endswith("…")
    assert all(measure(line, 60)[0] <= 300 for line in lines)


def test_fit_text_picks_the_largest_size_that_fits() -> None:
    title = "축구 묘기 Top 5 ⚽🔥 the most incredible football skills"

    size, lines = fit_text(title, 600, 3, 140, 30, balance=False)

    assert 30 < size < 140 and len(lines) <= 3
    assert all(measure(line, size)[0] <= 600 for line in lines)
    bigger = wrap(title, size + 1, 600)
    assert len(bigger) > 3 or any(measure(line, size + 1)[0] > 600 for line in bigger)


def test_fit_text_balances_lines() -> None:
    size, lines = fit_text("축구 묘기 Top 5 ⚽🔥", 880, 4, 132, 60)

    assert size == 132 and lines == ["축구 묘기", "Top 5 ⚽🔥"]


def test_fit_text_ellipsizes_at_the_minimum_size() -> None:
    size, lines = fit_text("word " * 200, 500, 2, 80, 40)

    assert size == 40 and len(lines) == 2 and lines[-1].endswith("…")
    assert all(measure(line, 40)[0] <= 500 for line in lines)


def test_fit_text_of_empty_text_has_no_lines() -> None:
    assert fit_text("", 500, 2, 80, 40)[1] == []
    assert fit_text(" \n\x00", 500, 2, 80, 40)[1] == []


def test_draw_text_clips_to_the_image_and_returns_the_block_box() -> None:
    image = Image.new("RGBA", (200, 100))

    box = draw_text(image, (100, 50), ["a very long line that overflows"], 48, anchor="mm")

    assert box[0] < 0 and box[2] > 200  # drawn partly outside without an error
    assert image.getbbox() is not None


def test_draw_text_places_the_block_by_its_anchor() -> None:
    image = Image.new("RGBA", (800, 400))

    box = draw_text(image, (790, 390), ["Top 5"], 60, anchor="rd", stroke_width=4)

    ink = image.getbbox()
    assert ink is not None
    assert box[2] == 790 and box[3] == 390
    assert box[0] <= ink[0] and box[1] <= ink[1] and ink[2] <= box[2] and ink[3] <= box[3]


def test_draw_text_needs_an_rgba_image() -> None:
    with pytest.raises(ValueError, match="RGBA"):
        draw_text(Image.new("RGB", (10, 10)), (0, 0), ["x"], 10)


# --- issue 7: hostile and arbitrary text ------------------------------------------------------

HOSTILE_TEXT = [
    '$(rm -rf ~); echo "x" | tee',
    "{0} %s %(x)s {__class__}",
    "<script>alert(1)</script>",
    "Skills: 'best' [0:v], a;b \\ c=d",
    "..\\..\\windows\\system32",
    "축구 드리블 묘기 베스트 다섯",
    "أفضل مهارات كرة القدم لهذا العام",
    "⚽🔥🏆",
    ("Incredible football skill compilation " * 8)[:300],
]
any_text = st.one_of(st.text(max_size=120), mixed_text, st.sampled_from(HOSTILE_TEXT))


def kept_text(lines: list[str]) -> str:
    """What the lines show of the text, spaces left out (wrapping moves them)."""
    return "".join(lines).replace(" ", "")


def assert_fits_and_keeps_a_prefix(
    value: str, lines: list[str], size: int, max_width: int, max_lines: int
) -> None:
    assert len(lines) <= max_lines
    for line in lines:
        assert line == line.strip() and line
        # A line is never wider than the room, but for one character wider on its own.
        fits = measure(line, size)[0] <= max_width
        assert fits or len(text._clusters(line.removesuffix(text.ELLIPSIS))) <= 1, line
    full, shown = clean_text(value).replace(" ", ""), kept_text(lines)
    if shown != full:  # cut: what is shown is the start of the text, then the ellipsis
        assert lines[-1].endswith(text.ELLIPSIS), lines
        assert full.startswith(shown.removesuffix(text.ELLIPSIS)), (full, shown)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=any_text,
    max_width=st.integers(min_value=120, max_value=900),
    max_lines=st.integers(min_value=1, max_value=4),
    sizes=st.tuples(st.integers(10, 60), st.integers(0, 80)),
)
def test_fit_text_fits_every_line_and_loses_nothing_but_what_the_ellipsis_stands_for(
    value: str, max_width: int, max_lines: int, sizes: tuple[int, int]
) -> None:
    min_size, extra = sizes
    size, lines = fit_text(value, max_width, max_lines, min_size + extra, min_size)

    assert min_size <= size <= min_size + extra
    assert_fits_and_keeps_a_prefix(value, lines, size, max_width, max_lines)
    if size > min_size:  # it fitted whole at a size above the minimum
        assert kept_text(lines) == clean_text(value).replace(" ", "")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=any_text,
    size=st.integers(min_value=12, max_value=90),
    max_width=st.integers(min_value=100, max_value=900),
    max_lines=st.integers(min_value=1, max_value=3),
)
def test_wrap_with_a_line_limit_keeps_the_start_of_any_text_and_marks_the_cut(
    value: str, size: int, max_width: int, max_lines: int
) -> None:
    lines = wrap(value, size, max_width, max_lines)

    assert_fits_and_keeps_a_prefix(value, lines, size, max_width, max_lines)
    whole = wrap(value, size, max_width)
    assert (len(whole) <= max_lines) == (lines == whole)


@pytest.mark.parametrize("value", HOSTILE_TEXT)
def test_hostile_titles_are_drawn_as_written(value: str) -> None:
    size, lines = fit_text(value, 900, 4, 132, 60)

    assert kept_text(lines).removesuffix(text.ELLIPSIS) in clean_text(value).replace(" ", "")
    assert render(lines, size).getbbox() is not None


def test_a_backslash_is_drawn_as_a_backslash_not_as_a_won_sign() -> None:
    # Korean fonts put the won sign on U+005C (KS X 1003): "C:\temp" must not read "C:₩temp".
    backslash, won = render(["\\"], 80), render(["\u20a9"], 80)

    assert backslash.getbbox() is not None
    assert backslash.size != won.size or ImageChops.difference(backslash, won).getbbox()
    face = text.face_for_character("\\")
    assert face is not None and text._draws_itself(face, "\\")
    assert [run.text for run in split_runs("a\\b 한")] == ["a", "\\", "b 한"]
    assert measure("\\", 80)[0] < measure("\u20a9", 80)[0]  # a thin stroke, not a currency sign
