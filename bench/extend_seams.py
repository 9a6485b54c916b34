"""Measurement of issue 6: colour drift and seams of an extend video, before and after.

A synthetic image-to-video "model" stands in for a real one and misbehaves the way real
ones do: each generation starts on the image it was given, holds it for a few frames before
moving (the stall), and adds a colour cast (the drift). Segment 1 starts from a textured
picture; each later segment is generated from a frame of the one before. Two pipelines
make a video from the same model:

- naive   what the usual scripts do: the next segment starts from the last frame as it is,
          segments are concatenated whole (the reference frame is shown twice, the stall
          is kept) and no colour is corrected;
- ours    the extend pipeline's own functions (`render/extend.py`): the sharpest late frame
          with the cast removed starts the next segment, frames repeating it are skipped,
          every segment is colour-matched to segment 1 and the seams are time-aligned
          crossfades, rendered by the engine in one ffmpeg process.

Both outputs are measured the same way: ΔE2000 (CIELAB) of each segment's mean colour
against segment 1 (sampled mid-segment), and, at each joint, the smallest frame-to-frame
change (mean |ΔY'|, 0-255) relative to the video's median — 0 means a frame shown twice —
and the frames that change less than a fifth of the median (repeats) over the whole video.

    uv run python bench/extend_seams.py            # 6 segments x 5 s at 720x1280 (~2 min)
    uv run python bench/extend_seams.py --smoke    # CI: 3 segments x 1.5 s, small
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from shorts_pipeline.render.continuity import (
    FrameStats,
    colour_distance,
    frame_differences,
    read_frames,
    segment_stats,
)
from shorts_pipeline.render.extend import ExtendPart, analyse_segment, extend_timeline, naive_join
from shorts_pipeline.render.probe import probe_clip
from shorts_pipeline.render.timeline import render_timeline

BENCH_DIR = Path(__file__).resolve().parent
FPS = 30
CAST = (6.0, 0.0, -6.0)  # RGB levels the model adds per generation (warm drift)
HOLD_FRAMES = 3  # frames the model shows its start image before it moves
TURN = 0.12  # radians the picture turns during a segment
ENLARGE = 1.22  # enough that a 9:16 frame turned by TURN shows no corner
SEAM = 0.2
REPEAT_FRACTION = 0.2  # a frame changing less than this share of the median is a repeat


def generate(
    dest: Path, start_image: Path, seconds: float, size: tuple[int, int], index: int
) -> Path:
    """The misbehaving model: a slow turn of `start_image` (bilinear, so every frame moves
    by a fraction of a pixel; alternating direction), held for HOLD_FRAMES first, with a
    colour cast added."""
    w, h = size
    hold = HOLD_FRAMES / FPS
    turn = TURN if index % 2 == 0 else -TURN
    angle = f"{turn}*max(0,t-{hold:.4f})/{seconds - hold:.4f}"
    r, g, b = CAST
    vf = ",".join(
        [
            f"scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h}",
            f"scale={round(w * ENLARGE) // 2 * 2}:{round(h * ENLARGE) // 2 * 2}",
            f"rotate=a='{angle}':ow={w}:oh={h}:bilinear=1",
            f"lutrgb=r='clip(val{r:+g},0,255)':g='clip(val{g:+g},0,255)':b='clip(val{b:+g},0,255)'",
            "format=yuv420p",
        ]
    )
    _ffmpeg(
        [
            "-loop",
            "1",
            "-framerate",
            str(FPS),
            "-i",
            str(start_image),
            "-t",
            f"{seconds:.3f}",
            "-vf",
            vf,
            "-r",
            str(FPS),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "14",
            str(dest),
        ]
    )
    return dest


def first_image(dest: Path, size: tuple[int, int]) -> Path:
    """A detailed, colourful picture to start from (a Mandelbrot view)."""
    w, h = size
    _ffmpeg(
        ["-f", "lavfi", "-i", f"mandelbrot=s={w}x{h}:start_scale=1.5", "-frames:v", "1", str(dest)]
    )
    return dest


def last_frame(video: Path, dest: Path) -> Path:
    _ffmpeg(["-sseof", "-0.1", "-i", str(video), "-update", "1", "-q:v", "1", str(dest)])
    return dest


def naive_pipeline(work: Path, count: int, seconds: float, size: tuple[int, int]) -> Path:
    image = first_image(work / "n-start.png", size)
    paths = []
    for k in range(count):
        path = generate(work / f"n{k}.mp4", image, seconds, size, k)
        paths.append(path)
        image = last_frame(path, work / f"n{k}-last.png")
    return naive_join(paths, work / "naive.mp4", fps=FPS)


def our_pipeline(
    work: Path, count: int, seconds: float, size: tuple[int, int], out_size: tuple[int, int]
) -> tuple[Path, list[float]]:
    image = first_image(work / "o-start.png", size)
    reference: Path | None = None
    base: FrameStats | None = None
    parts, lengths = [], []
    for k in range(count):
        path = generate(work / f"o{k}.mp4", reference or image, seconds, size, k)
        nxt = work / f"o{k}-next.png"
        analysis = analyse_segment(
            path,
            index=k,
            count=count,
            reference=reference,
            base=base,
            match_colours=True,
            seam=SEAM,
            tail_window=0.5,
            next_reference=nxt if k < count - 1 else None,
        )
        if base is None:
            base = segment_stats(path)
        parts.append(
            ExtendPart(
                probe_clip(path),
                analysis.start,
                analysis.end,
                colour="" if analysis.match.identity else analysis.match.ffmpeg_filter(),
            )
        )
        lengths.append(analysis.end - analysis.start)
        reference = nxt if k < count - 1 else None
    timeline = extend_timeline(
        parts, seam=SEAM, width=out_size[0], height=out_size[1], music=None, music_db=-16
    )
    out = work / "ours.mp4"
    render_timeline(timeline, out)
    return out, lengths


def measure(video: Path, lengths: list[float], overlap: float) -> dict[str, object]:
    """Drift per segment and the joints' smallest frame change, relative to the median."""
    starts, t = [], 0.0
    for length in lengths:
        starts.append(t)
        t += length - overlap
    means = [
        read_frames(video, start=s + length / 2 - 0.15, duration=0.3).reshape(-1, 3).mean(axis=0)
        for s, length in zip(starts, lengths, strict=True)
    ]
    drift = [round(colour_distance(m, means[0]), 2) for m in means]
    diffs = frame_differences(video)
    median = float(np.median(diffs))
    joints = []
    for s, length in zip(starts[:-1], lengths[:-1], strict=True):
        joint = round((s + length - overlap) * FPS)
        window = diffs[max(0, joint - 4) : joint + round(overlap * FPS) + 4]
        joints.append(round(float(window.min()) / median, 3))
    # A frame shown twice changes by compression noise only: far below the motion's median.
    repeats = int((diffs < REPEAT_FRACTION * median).sum())
    return {
        "drift_de2000": drift,
        "joint_min_change_vs_median": joints,
        "repeated_frames": repeats,
        "median_change": round(median, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, for CI")
    parser.add_argument(
        "--out",
        type=Path,
        help="where to write the JSON (default: bench/results/extend_seams.json; with --smoke, "
        "nowhere unless given, so a smoke run never replaces the committed results)",
    )
    args = parser.parse_args()
    count, seconds = (3, 1.5) if args.smoke else (6, 5.0)
    size = (270, 480) if args.smoke else (720, 1280)
    out_size = (360, 640) if args.smoke else (1080, 1920)
    work = Path(tempfile.mkdtemp(prefix="extend-seams-"))
    try:
        started = time.monotonic()
        naive = naive_pipeline(work, count, seconds, size)
        naive_lengths = [probe_clip(work / f"n{k}.mp4").duration for k in range(count)]
        ours, our_lengths = our_pipeline(work, count, seconds, size, out_size)
        results = {
            "segments": count,
            "seconds_each": seconds,
            "cast_per_generation_rgb": CAST,
            "hold_frames": HOLD_FRAMES,
            "naive": measure(naive, naive_lengths, 0.0),
            "ours": measure(ours, our_lengths, SEAM),
            "wall_s": round(time.monotonic() - started, 1),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name in ("naive", "ours"):
        r = results[name]
        assert isinstance(r, dict)
        print(
            f"{name:6} drift ΔE vs segment 1: {r['drift_de2000']}  (max "
            f"{max(r['drift_de2000']):.2f})\n"
            f"       joints, smallest change / median: {r['joint_min_change_vs_median']}  "
            f"repeated frames: {r['repeated_frames']}"
        )
    print(f"wall {results['wall_s']} s")
    out = args.out or (None if args.smoke else BENCH_DIR / "results" / "extend_seams.json")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {out}")


def _ffmpeg(args: list[str]) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", *args],
        check=True,
        capture_output=True,
    )


if __name__ == "__main__":
    main()
