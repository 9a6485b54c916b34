"""The offline storyboard provider: panels, segment MP4s and captions, judged by their files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shorts_pipeline.render.continuity import frame_differences, read_frames
from shorts_pipeline.render.errors import MediaError
from shorts_pipeline.render.geometry import safe_area
from shorts_pipeline.render.storyboard import (
    draw_storyboard_caption,
    draw_storyboard_panel,
    render_storyboard_segment,
)

pytestmark = pytest.mark.slow

W, H = 180, 320


def pixels(path: Path, mode: str = "RGB") -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert(mode), dtype=np.float32)


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


# --- panels ----------------------------------------------------------------------------------


def panel(tmp_path: Path, prompt: str, index: int = 0, count: int = 6) -> np.ndarray:
    path = draw_storyboard_panel(
        tmp_path / f"{abs(hash((prompt, index)))}.png",
        prompt=prompt,
        index=index,
        count=count,
        width=W,
        height=H,
    )
    with Image.open(path) as image:
        assert image.size == (W, H) and image.mode == "RGB"
    return pixels(path)


def test_a_panel_is_the_same_for_the_same_prompt(tmp_path) -> None:
    first = draw_storyboard_panel(
        tmp_path / "a.png", prompt="A fox in the forest", index=1, count=4, width=W, height=H
    )
    again = draw_storyboard_panel(
        tmp_path / "b.png", prompt="A fox in the forest", index=1, count=4, width=W, height=H
    )
    assert first.read_bytes() == again.read_bytes()


def test_the_words_of_the_prompt_choose_the_colours(tmp_path) -> None:
    def ground(p: np.ndarray) -> np.ndarray:  # mean R, G, B of the bottom quarter
        return p[3 * H // 4 :].reshape(-1, 3).mean(axis=0)

    night = panel(tmp_path, "a quiet city street at night")
    day = panel(tmp_path, "a quiet city street at noon")
    forest = panel(tmp_path, "deep green forest")
    ocean = panel(tmp_path, "waves on the open sea")
    desert = panel(tmp_path, "camels crossing the desert")
    snow = panel(tmp_path, "snow falling on the village")
    korean = panel(tmp_path, "바다 위의 밤하늘")
    sunset = panel(tmp_path, "hills at sunset")

    assert night.mean() < 50 < day.mean()
    r, g, b = ground(forest)
    assert g > r and g > b
    r, g, b = ground(ocean)
    assert b > r + 40
    r, g, b = ground(desert)
    assert r > b + 50
    assert ground(snow).mean() > 200
    assert korean.mean() < 60 and ground(korean)[2] > ground(korean)[0]  # sea at night
    sky = sunset[H // 3 : H // 2].reshape(-1, 3).mean(axis=0)
    assert sky[0] > sky[2]  # a warm evening sky


def test_prompts_without_keywords_get_distinct_calm_palettes(tmp_path) -> None:
    a, b = panel(tmp_path, "a robot learns to paint"), panel(tmp_path, "the last train home")
    assert np.abs(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))).max() > 8
    for p in (a, b):
        saturation = p.max(axis=2) - p.min(axis=2)
        assert np.median(saturation) < 110  # not garish


def test_the_sun_moves_along_the_chain(tmp_path) -> None:
    early, late = panel(tmp_path, "hills", 0, 6), panel(tmp_path, "hills", 5, 6)
    assert np.abs(early - late)[: H // 2].mean() > 1  # the sky differs
    assert np.abs(early - late)[-H // 4 :].mean() < 0.5  # the ground does not


# --- segments --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Path]:
    """Segment 1 from nothing, then segment 2 from a reference of another size and picture."""
    folder = tmp_path_factory.mktemp("storyboard")
    reference = folder / "reference.png"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=400x400", "-frames:v", "1",
         str(reference)],
        check=True,
    )  # fmt: skip
    first = render_storyboard_segment(
        folder / "s1.mp4", prompt="green hills", index=0, count=3, seconds=2.0, width=W, height=H
    )
    second = render_storyboard_segment(
        folder / "out" / "s2.mp4",
        prompt="a city street at night",
        index=1,
        count=3,
        seconds=1.5,
        width=W,
        height=H,
        fps=24,
        reference=reference,
    )
    return {"first": first, "second": second, "reference": reference, "folder": folder}


@pytest.mark.parametrize(("name", "fps", "frames"), [("first", 30, 60), ("second", 24, 36)])
def test_a_segment_is_an_h264_mp4_of_the_exact_length(chain, name, fps, frames) -> None:
    streams = ffprobe(chain[name])["streams"]

    assert [s["codec_type"] for s in streams] == ["video"]
    video = streams[0]
    assert (video["codec_name"], video["pix_fmt"]) == ("h264", "yuv420p")
    assert (video["width"], video["height"]) == (W, H)
    assert video["r_frame_rate"] == f"{fps}/1"
    assert int(video["nb_read_frames"]) == frames
    assert video.get("color_space") == "bt709"


@pytest.mark.parametrize("name", ["first", "second"])
def test_every_frame_moves(chain, name) -> None:
    diffs = frame_differences(chain[name])
    print(f"\n{name}: frame differences min {diffs.min():.2f}, median {np.median(diffs):.2f}")
    assert diffs.min() > 0.3, f"frame {int(diffs.argmin()) + 1} barely differs from the one before"


def test_a_segment_starts_on_its_reference_and_ends_on_its_own_panel(chain, tmp_path) -> None:
    frames = read_frames(chain["second"], width=W, height=H).astype(np.float32)
    with Image.open(chain["reference"]) as image:  # 400x400, cover-fitted to 180x320
        side = 400 * W // H
        fitted = image.convert("RGB").crop(((400 - side) // 2, 0, (400 + side) // 2, 400))
        reference = np.asarray(fitted.resize((W, H), Image.Resampling.BOX), dtype=np.float32)
    own = panel(tmp_path, "a city street at night", index=1, count=3)

    assert np.abs(frames[0] - reference).mean() < 6

    def correlation(a: np.ndarray, b: np.ndarray) -> float:
        """Of the compositions: luma in 10x10 blocks, so a pan of a few pixels does not count."""
        a, b = (x.mean(axis=2).reshape(H // 10, 10, W // 10, 10).mean(axis=(1, 3)) for x in (a, b))
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    last = frames[-1]
    print(f"\nlast frame: r={correlation(last, own):.2f} with its panel, "
          f"{correlation(last, reference):.2f} with the reference")  # fmt: skip
    assert correlation(last, own) > 0.6
    assert correlation(last, own) > correlation(last, reference) + 0.4


def test_segments_are_written_atomically(chain) -> None:
    leftovers = [p.name for p in chain["folder"].rglob(".*")]
    assert leftovers == []


def test_a_missing_reference_or_no_frames_is_refused(tmp_path) -> None:
    with pytest.raises(MediaError, match=r"nowhere\.png"):
        render_storyboard_segment(
            tmp_path / "x.mp4", prompt="p", index=1, count=2, seconds=1, width=W, height=H,
            reference=tmp_path / "nowhere.png",
        )  # fmt: skip
    with pytest.raises(ValueError, match="at least one frame"):
        render_storyboard_segment(
            tmp_path / "x.mp4", prompt="p", index=0, count=2, seconds=0.01, width=W, height=H
        )
    assert not (tmp_path / "x.mp4").exists()


# --- captions --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1080, 1920), (1920, 1080), (1080, 1080)])
@pytest.mark.parametrize("position", ["top", "bottom"])
def test_caption_is_a_translucent_band_inside_the_safe_area(tmp_path, size, position) -> None:
    path, x, y = draw_storyboard_caption(
        tmp_path / "caption.png",
        prompt="The camera rises above the misty forest canopy into golden morning light, "
        "revealing mountains far away and a river winding through the valley below",
        index=2,
        count=6,
        width=size[0],
        height=size[1],
        position=position,
    )

    with Image.open(path) as image:
        assert image.mode == "RGBA"
        w, h = image.size
        alpha = np.asarray(image.getchannel("A"))
    safe = safe_area(*size)
    assert safe.contains(x, y, w, h)
    assert (y == safe.top) if position == "top" else (y + h == safe.bottom)
    assert w == safe.width and h < safe.height / 2
    assert (alpha == 0).any()  # rounded corners
    assert ((alpha > 0) & (alpha < 200)).mean() > 0.5  # a translucent band
    assert (alpha == 255).sum() > 200  # opaque text
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def caption_pixels(tmp_path: Path, prompt: str) -> np.ndarray:
    path, _, _ = draw_storyboard_caption(
        tmp_path / f"{abs(hash(prompt))}.png", prompt=prompt, index=0, count=2, width=W * 6,
        height=H * 6,
    )  # fmt: skip
    return pixels(path, "RGBA")


def test_caption_draws_hangul_and_emoji(tmp_path) -> None:
    label_only = caption_pixels(tmp_path, "")
    football = caption_pixels(tmp_path, "축구 묘기")
    sky = caption_pixels(tmp_path, "하늘 바다")
    fire = caption_pixels(tmp_path, "🔥🔥🔥")

    def text_ink(p: np.ndarray) -> np.ndarray:  # white text pixels below the label
        return (p[..., 3] == 255) & (p[..., :3].min(axis=2) > 200)

    assert football.shape[0] > label_only.shape[0]  # the prompt took a line
    assert text_ink(football).sum() > 300
    # A font without the glyphs would draw the same box for every syllable.
    band = min(football.shape[0], sky.shape[0])
    assert (text_ink(football[:band]) != text_ink(sky[:band])).sum() > 200

    def colourful(p: np.ndarray) -> int:
        rgb = p[..., :3]
        return int(((p[..., 3] > 200) & (rgb.max(axis=2) - rgb.min(axis=2) > 80)).sum())

    assert colourful(fire) > colourful(label_only) + 300  # emoji in colour, not as boxes


def test_caption_of_a_long_prompt_keeps_three_lines(tmp_path) -> None:
    def lines(p: np.ndarray) -> int:
        ink = ((p[..., 3] == 255) & (p[..., :3].min(axis=2) > 200)).any(axis=1)  # white text
        return int(np.count_nonzero(ink[1:] & ~ink[:-1]) + ink[0])

    assert lines(caption_pixels(tmp_path, "one short line")) == 1
    assert lines(caption_pixels(tmp_path, "word " * 200)) == 3
