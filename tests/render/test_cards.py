"""Title/outro cards, rank badges and previews, checked by opening the files they write."""

from __future__ import annotations

import base64
import io
import os

import pytest
from PIL import Image, ImageChops, ImageStat

from shorts_pipeline.render.cards import (
    contact_sheet,
    draw_outro_card,
    draw_rank_badge,
    draw_title_card,
    thumbnail_data_uri,
)
from shorts_pipeline.render.errors import MediaError
from shorts_pipeline.render.geometry import SAFE_TOP, safe_area

ACCENT = (255, 196, 0)
EDGE_TITLES = [
    "축구 묘기 Top 5 ⚽🔥",
    "../../etc/passwd",
    "⚽🔥🏆",
    "مرحبا بالعالم",
    "가" * 300,
    "The quick brown fox " * 15,
    "",
    "\"Quotes\" & <script>alert('x')</script>",
]


def changed_box(image: Image.Image, reference: Image.Image) -> tuple[int, int, int, int] | None:
    return ImageChops.difference(image.convert("RGB"), reference.convert("RGB")).getbbox()


def inside(box: tuple[int, int, int, int], size: tuple[int, int]) -> bool:
    safe = safe_area(*size)
    return safe.contains(box[0], box[1], box[2] - box[0], box[3] - box[1])


def accent_pixels(image: Image.Image) -> int:
    """Opaque pixels of the accent colour (255, 196, 0), give or take anti-aliasing."""
    red, green, blue, alpha = image.convert("RGBA").split()
    masks = [
        red.point(lambda v: 255 if v > 235 else 0),
        green.point(lambda v: 255 if 176 < v < 216 else 0),
        blue.point(lambda v: 255 if v < 40 else 0),
        alpha.point(lambda v: 255 if v > 200 else 0),
    ]
    combined = masks[0]
    for mask in masks[1:]:
        combined = ImageChops.multiply(combined, mask)
    return combined.histogram()[255]


@pytest.fixture(scope="module")
def blank_card(tmp_path_factory) -> Image.Image:
    path = str(tmp_path_factory.mktemp("blank") / "blank.png")
    return Image.open(draw_title_card(path, ""))


@pytest.mark.parametrize("title", EDGE_TITLES)
def test_title_card_is_an_opaque_full_frame_with_text_in_the_safe_area(
    tmp_path, title, blank_card
) -> None:
    path = draw_title_card(str(tmp_path / "title.png"), title, subtitle="Top 5")

    image = Image.open(path)
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (1080, 1920))
    box = changed_box(image, blank_card)
    assert box is not None and inside(box, image.size)
    if title:
        assert box[3] - box[1] > 200  # subtitle, bar and the title all drawn


def test_title_card_draws_the_subtitle_in_the_accent_colour(tmp_path) -> None:
    without = Image.open(draw_title_card(str(tmp_path / "a.png"), "축구 묘기"))
    with_subtitle = Image.open(draw_title_card(str(tmp_path / "b.png"), "축구 묘기", "Top 5"))

    assert accent_pixels(with_subtitle) > accent_pixels(without) + 1000


def test_title_card_looks_the_same_at_720p(tmp_path) -> None:
    title = "축구 묘기 Top 5 ⚽🔥"
    full = Image.open(draw_title_card(str(tmp_path / "full.png"), title, "Top 5"))
    small = Image.open(
        draw_title_card(str(tmp_path / "small.png"), title, "Top 5", size=(720, 1280))
    )

    assert small.size == (720, 1280)
    upscaled = small.resize(full.size, Image.Resampling.BILINEAR)
    difference = ImageStat.Stat(ImageChops.difference(full, upscaled)).mean
    assert max(difference) < 6


@pytest.mark.parametrize("caption", [*EDGE_TITLES, "믿을 수 없는 바이시클킥 골 " * 10])
def test_rank_badge_is_a_small_overlay_inside_the_safe_area(tmp_path, caption) -> None:
    overlay = draw_rank_badge(str(tmp_path / "badge.png"), 3, caption)

    image = Image.open(overlay.path)
    assert (image.format, image.mode) == ("PNG", "RGBA")
    assert image.size == (overlay.width, overlay.height)
    assert image.getchannel("A").getbbox() == (0, 0, overlay.width, overlay.height)  # cropped
    assert overlay.y >= SAFE_TOP
    assert safe_area().contains(overlay.x, overlay.y, overlay.width, overlay.height)
    assert overlay.width * overlay.height < 0.2 * 1080 * 1920
    assert overlay.height < 450  # the caption takes two lines at most


def test_rank_badge_draws_the_accent_badge_on_top_and_the_caption_below(tmp_path) -> None:
    overlay = draw_rank_badge(str(tmp_path / "badge.png"), 3, "믿을 수 없는 골 ⚽")
    image = Image.open(overlay.path)
    frame = Image.new("RGBA", (1080, 1920), (0, 128, 0, 255))
    frame.alpha_composite(image, (overlay.x, overlay.y))

    badge_band = frame.crop((0, overlay.y, 1080, overlay.y + overlay.height // 2))
    caption_band = frame.crop((0, overlay.y + overlay.height * 2 // 3, 1080, 1920))
    assert accent_pixels(badge_band) > 5000
    assert accent_pixels(caption_band) == 0
    outside = frame.copy()
    outside.paste(
        (0, 128, 0, 255),
        (overlay.x, overlay.y, overlay.x + overlay.width, overlay.y + overlay.height),
    )
    assert changed_box(outside, Image.new("RGBA", (1080, 1920), (0, 128, 0, 255))) is None
    assert changed_box(frame, outside) is not None


@pytest.mark.parametrize("rank", [1, 10, 100, 12345])
def test_rank_badge_grows_with_the_number_but_stays_in_the_safe_area(tmp_path, rank) -> None:
    overlay = draw_rank_badge(str(tmp_path / "badge.png"), rank, "")

    assert safe_area().contains(overlay.x, overlay.y, overlay.width, overlay.height)
    assert overlay.width < 900


def test_rank_badge_scales_with_the_frame(tmp_path) -> None:
    full = draw_rank_badge(str(tmp_path / "full.png"), 2, "A fine goal")
    small = draw_rank_badge(str(tmp_path / "small.png"), 2, "A fine goal", frame_size=(720, 1280))

    assert safe_area(720, 1280).contains(small.x, small.y, small.width, small.height)
    assert small.height == pytest.approx(full.height * 2 / 3, rel=0.08)
    assert small.width == pytest.approx(full.width * 2 / 3, rel=0.08)


@pytest.mark.parametrize("title", ["축구 묘기 Top 5 ⚽🔥", "", "x" * 300])
def test_outro_card_is_an_opaque_full_frame(tmp_path, title, blank_card) -> None:
    path = draw_outro_card(str(tmp_path / "outro.png"), title)

    image = Image.open(path)
    assert (image.mode, image.size) == ("RGB", (1080, 1920))
    box = changed_box(image, blank_card)
    assert box is not None and inside(box, image.size)
    assert accent_pixels(image) > 5000  # the "Follow for more" button


def test_outro_card_accepts_no_lines(tmp_path) -> None:
    image = Image.open(draw_outro_card(str(tmp_path / "o.png"), "", lines=(), size=(720, 1280)))

    assert image.size == (720, 1280)


def write_frames(folder, count: int, noisy: bool) -> list[str]:
    paths = []
    for index in range(count):
        path = str(folder / f"frame{index}.png")
        if noisy:  # the worst case for JPEG size
            frame = Image.effect_noise((135, 240), 80).convert("RGB")
        else:
            frame = Image.radial_gradient("L").resize((270, 480)).convert("RGB")
            frame.paste((40 * index % 255, 120, 200), (20, 100, 250, 300))
        frame.save(path)
        paths.append(path)
    return paths


def test_contact_sheet_is_a_jpeg_grid_of_thumbnails(tmp_path) -> None:
    frames = write_frames(tmp_path, 10, noisy=False)

    out = contact_sheet(frames, str(tmp_path / "sheet.jpg"), columns=4, thumb_width=120)

    image = Image.open(out)
    assert image.format == "JPEG"
    assert image.size == (4 * (120 + 4) + 4, 3 * (213 + 4) + 4)  # 270x480 frames at 120 px wide
    assert os.path.getsize(out) < 30_000


def test_contact_sheet_stays_under_30_kb_even_for_noise(tmp_path) -> None:
    frames = write_frames(tmp_path, 12, noisy=True)

    out = contact_sheet(frames, str(tmp_path / "sheet.jpg"))

    assert os.path.getsize(out) < 30_000
    assert Image.open(out).width > 150


def test_contact_sheet_names_an_unreadable_image(tmp_path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")

    with pytest.raises(MediaError, match=r"broken\.png"):
        contact_sheet([str(broken)], str(tmp_path / "sheet.jpg"))


def test_thumbnail_data_uri_is_a_small_jpeg(tmp_path) -> None:
    card = draw_title_card(str(tmp_path / "card.png"), "축구 묘기 Top 5 ⚽🔥", "Top 5")

    uri = thumbnail_data_uri(card)

    prefix = "data:image/jpeg;base64,"
    assert uri.startswith(prefix) and len(uri) < 8_000
    image = Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :])))
    assert image.format == "JPEG" and image.width <= 120


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path) -> None:
    folder = tmp_path / "cards"  # created by the writer
    path = str(folder / "card.png")
    draw_title_card(path, "first")
    draw_title_card(path, "second")
    draw_rank_badge(str(folder / "badge.png"), 1, "x")

    assert sorted(os.listdir(folder)) == ["badge.png", "card.png"]
    assert Image.open(path).size == (1080, 1920)
