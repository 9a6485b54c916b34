"""Continuity between generated segments, measured on real clips that ffmpeg makes and decodes."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shorts_pipeline.render.continuity import (
    REFERENCE_MATCH,
    REPEAT_THRESHOLD,
    ColourMatch,
    FrameStats,
    colour_distance,
    colour_match,
    delta_e_2000,
    drift_report,
    frame_differences,
    leading_duplicates,
    read_frames,
    segment_stats,
    sharpest_tail_frame,
)
from shorts_pipeline.render.errors import MediaError, ProbeError

pytestmark = pytest.mark.slow

SIZE = "320x568"
BT709 = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"]
TO_BT709 = "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p"


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def clip(out: Path, source: str, vf: str = "null", *extra: str) -> Path:
    ffmpeg("-f", "lavfi", "-i", source, "-vf", f"{vf},{TO_BT709}", *BT709, *extra,
           "-c:v", "libx264", "-preset", "ultrafast", "-crf", "14", str(out))  # fmt: skip
    return out


def parallel(jobs: Sequence) -> list:
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda job: job(), jobs))


# --- colour drift ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drifting(tmp_path_factory) -> list[Path]:
    """Six 2 s segments whose colours drift a little more each hop, as a chain of image-to-
    video generations does: segment k has k times a warm cast and a lift."""
    folder = tmp_path_factory.mktemp("drift")

    def segment(k: int):
        cast = (
            f"colorchannelmixer=rr={1 + 0.05 * k:.3f}:gg={1 - 0.015 * k:.3f}:bb={1 - 0.06 * k:.3f}"
        )
        lift = f"eq=brightness={0.015 * k:.3f}"
        return lambda: clip(folder / f"seg{k}.mp4", f"testsrc2=s={SIZE}:r=30:d=2", f"{cast},{lift}")

    return parallel([segment(k) for k in range(6)])


def test_colour_matching_removes_the_drift_in_the_rendered_files(drifting, tmp_path) -> None:
    stats = parallel([lambda p=p: segment_stats(p) for p in drifting])
    matches = [colour_match(s, stats[0]) for s in stats]

    def render(k: int):
        out = tmp_path / f"matched{k}.mp4"
        return lambda: clip_from(drifting[k], out, matches[k].ffmpeg_filter())

    rendered = parallel([render(k) for k in range(len(drifting))])
    before = drift_report(drifting)
    predicted = drift_report(drifting, matches)
    after = drift_report(rendered)

    print("\nΔE2000 vs segment 1, before:   ", " ".join(f"{d:5.2f}" for d in before))
    print("predicted from the statistics: ", " ".join(f"{d:5.2f}" for d in predicted))
    print("measured on the matched files: ", " ".join(f"{d:5.2f}" for d in after))
    print("matches:", *(m.describe() for m in matches), sep="\n  ")
    assert before[0] == 0 and after[0] == pytest.approx(0, abs=0.3)
    assert all(b2 > b1 for b1, b2 in itertools.pairwise(before)), "drift accumulates"
    assert max(before) > 8
    assert max(after) <= max(before) / 3
    assert all(a <= b / 3 for a, b in zip(after[1:], before[1:], strict=True))
    assert max(after) < 1.5
    assert max(predicted) < 0.5


def clip_from(source: Path, out: Path, colour: str) -> Path:
    """`source` re-encoded through a colour filter, as the final render applies it."""
    ffmpeg("-i", str(source), "-vf", f"{TO_BT709},{colour}", *BT709,
           "-c:v", "libx264", "-preset", "ultrafast", "-crf", "14", str(out))  # fmt: skip
    return out


def test_apply_to_image_agrees_with_the_ffmpeg_filter(drifting, tmp_path) -> None:
    source = tmp_path / "frame.png"
    ffmpeg("-ss", "1", "-i", str(drifting[5]), "-frames:v", "1", str(source))
    match = colour_match(segment_stats(drifting[5]), segment_stats(drifting[0]))

    by_numpy = tmp_path / "numpy.png"
    match.apply_to_image(source, by_numpy)
    by_ffmpeg = tmp_path / "ffmpeg.png"
    back_to_rgb = "scale=in_color_matrix=bt709:in_range=tv,format=rgb24"
    ffmpeg("-i", str(source), "-vf", f"{TO_BT709},{match.ffmpeg_filter()},{back_to_rgb}",
           str(by_ffmpeg))  # fmt: skip

    original, numpy_result, ffmpeg_result = (
        np.asarray(Image.open(p).convert("RGB")) for p in (source, by_numpy, by_ffmpeg)
    )
    assert numpy_result.shape == original.shape
    agreement = colour_distance(numpy_result, ffmpeg_result)
    moved = colour_distance(numpy_result, original)
    print(f"\napply_to_image vs ffmpeg_filter: ΔE {agreement:.2f} (the match moved it {moved:.1f})")
    assert agreement < 1.5
    assert moved > 5


def test_apply_to_image_keeps_alpha_and_may_overwrite_its_source(tmp_path) -> None:
    image = tmp_path / "ref.png"
    Image.new("RGBA", (8, 4), (120, 80, 60, 128)).save(image)
    ColourMatch(gain=(1.1, 1.0, 1.0), offset=(5.0, -3.0, 2.0)).apply_to_image(image, image)

    with Image.open(image) as result:
        assert result.mode == "RGBA" and result.size == (8, 4)
        assert result.getpixel((0, 0))[3] == 128
        assert result.getpixel((0, 0))[:3] != (120, 80, 60)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_identity_match_is_a_null_filter_and_gains_are_clamped() -> None:
    stats = FrameStats(mean=(110.0, 125.0, 131.0), std=(40.0, 9.0, 11.0))

    same = colour_match(stats, stats)
    assert same.identity and same.ffmpeg_filter() == "null" and same.describe() == "no change"

    flat = FrameStats(mean=(110.0, 128.0, 128.0), std=(0.5, 0.01, 0.0))
    wild = colour_match(flat, stats, max_gain=2.0, min_gain=0.5)
    assert wild.gain == (2.0, 2.0, 1.0)  # a flat plane keeps gain 1: nothing to stretch
    # The offset still moves the mean onto the reference's.
    assert wild.apply_to_stats(flat).mean == pytest.approx(stats.mean)

    half = colour_match(flat, stats, strength=0.5)
    assert half.gain[0] == pytest.approx(1.5)
    text = wild.ffmpeg_filter()
    assert text.startswith("lutyuv=y='clip(round(val*2.000000") and "16,235" in text
    assert "16,240" in text and "'" in text and ";" not in text and "[" not in text


def test_colour_distance_is_ciede2000() -> None:
    # Reference pairs from Sharma, Wu and Dalal (2005), table 1.
    pairs = [
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
        ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ]
    for lab1, lab2, expected in pairs:
        assert delta_e_2000(lab1, lab2) == pytest.approx(expected, abs=1e-4)

    grey = np.full((4, 4, 3), 128, np.uint8)
    assert colour_distance(grey, grey) == 0
    assert colour_distance(grey, np.array([128.0, 128.0, 140.0])) > 2
    stats = FrameStats(mean=(126.0, 128.0, 128.0), std=(1.0, 1.0, 1.0))  # Y' 126 is R'G'B' 128
    assert colour_distance(stats, grey) < 0.5


# --- reading frames --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moving(tmp_path_factory) -> Path:
    return clip(tmp_path_factory.mktemp("moving") / "moving.mp4", f"testsrc2=s={SIZE}:r=30:d=2")


def test_read_frames_returns_small_rgb_frames(moving) -> None:
    every = read_frames(moving)
    assert every.shape == (60, 170, 96, 3) and every.dtype == np.uint8
    sampled = read_frames(moving, start=0.5, duration=1.0, width=64, height=32, fps=5)
    assert sampled.shape == (5, 32, 64, 3)


def test_frame_differences_find_a_repeated_frame(tmp_path) -> None:
    # `loop` at start=10 shows the 10th frame (index 9) twice: frames 9 and 10 are the same.
    stalled = clip(
        tmp_path / "stall.mp4",
        f"testsrc2=s={SIZE}:r=30:d=1",
        "loop=loop=1:size=1:start=10,setpts=N/30/TB",
    )

    diffs = frame_differences(stalled)

    assert len(diffs) == 30  # 31 frames
    assert int(diffs.argmin()) == 9 and diffs[9] < 0.1
    assert np.delete(diffs, 9).min() > 1.0


def test_decoding_errors_name_the_file(tmp_path) -> None:
    fake = tmp_path / "not-a-video.mp4"
    fake.write_text("hello")
    for call in (
        lambda: read_frames(fake),
        lambda: segment_stats(fake),
        lambda: frame_differences(fake),
        lambda: sharpest_tail_frame(fake, tmp_path / "t.png"),
        lambda: drift_report([tmp_path / "missing.mp4"]),
    ):
        with pytest.raises(ProbeError) as raised:
            call()
        assert tmp_path.name in str(raised.value)
    with pytest.raises(MediaError, match="not-an-image"):
        ColourMatch((1.1, 1, 1), (0, 0, 0)).apply_to_image(tmp_path / "not-an-image.png", fake)


# --- the reference frame ---------------------------------------------------------------------


def test_sharpest_tail_frame_picks_the_one_sharp_frame_among_blurred_ones(tmp_path) -> None:
    # The last 0.5 s (frames 45-59) is blurred except frame 52.
    blurred = clip(tmp_path / "blurred.mp4", f"testsrc2=s={SIZE}:r=30:d=2",
                   "boxblur=4:enable='gte(n,45)*not(eq(n,52))'")  # fmt: skip

    tail = sharpest_tail_frame(blurred, tmp_path / "ref" / "tail.png")

    assert tail.index == 52 and tail.time == pytest.approx(52 / 30, abs=1e-3)
    assert tail.path == tmp_path / "ref" / "tail.png"
    written = np.asarray(Image.open(tail.path).convert("RGB"), dtype=np.float32)
    assert written.shape == (568, 320, 3)
    frame_52 = read_frames(blurred, start=52 / 30, duration=0.01, width=320, height=568)[0]
    assert np.abs(written - frame_52).mean() < 1.0
    assert [p.name for p in tail.path.parent.iterdir()] == ["tail.png"]

    # A window that ends earlier: all sharp, so the latest frame before its end wins.
    early = sharpest_tail_frame(blurred, tmp_path / "early.png", window=0.5, end=1.0)
    assert 15 <= early.index <= 29 and 0.5 - 1e-3 <= early.time < 1.0


# --- stalls at the joint ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """A wide still (testsrc2) and the reference: its left 320x568."""
    folder = tmp_path_factory.mktemp("reference")
    wide = folder / "wide.png"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=420x568", "-frames:v", "1", str(wide))
    ref = folder / "reference.png"
    ffmpeg("-i", str(wide), "-vf", "crop=320:568:0:0", str(ref))
    return wide, ref


def panning(out: Path, wide: Path, still_frames: int) -> Path:
    """The reference for `still_frames` frames, then a pan of 6 px a frame."""
    ffmpeg("-loop", "1", "-framerate", "30", "-i", str(wide), "-frames:v", "20",
           "-vf", f"crop=320:568:x='max(0,n-{still_frames - 1})*6':y=0,{TO_BT709}", *BT709,
           "-c:v", "libx264", "-crf", "23", str(out))  # fmt: skip
    return out


def test_leading_duplicates_counts_the_frames_that_repeat_the_reference(
    reference, tmp_path
) -> None:
    wide, ref = reference
    held = panning(tmp_path / "held.mp4", wide, 3)  # frame 0 is the reference + 2 copies
    moving = panning(tmp_path / "moving.mp4", wide, 1)  # moves from frame 1
    other = clip(tmp_path / "other.mp4", f"smptehdbars=s={SIZE}:r=30:d=0.7", "hue=h='t*90'")

    assert leading_duplicates(held, ref) == 3
    assert leading_duplicates(moving, ref) == 1
    assert leading_duplicates(other, ref) == 0
    # The reference at another size is cover-fitted first.
    big = tmp_path / "big.png"
    Image.open(ref).resize((640, 1136)).save(big)
    assert leading_duplicates(held, big) == 3
    assert leading_duplicates(held, ref, max_seconds=0.02) == 1  # counting stops in time
    assert 0 < REPEAT_THRESHOLD < REFERENCE_MATCH
