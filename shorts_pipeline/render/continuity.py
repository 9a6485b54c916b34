"""Continuity between generated segments: colour drift, the reference frame, stalls at joints.

An extend video is a chain: segment k+1 is generated from a frame near the end of segment k.
Each hop shifts the colours a little and the shifts add up, and a model's first frame (or
first few) repeat the reference it was given, so a plain join shows a stall at every seam.
This module measures those things and computes the corrections; the render applies them.

Colour matching space. The correction has to run inside the one filter graph of the final
render, on the yuv420p frames it already carries, without a colour-space round trip. So
statistics are measured, and the transfer made, per plane in Y'CbCr (BT.709, limited range —
the planes the render holds after fitting a clip to the frame):

- Y'CbCr is a luma/chroma opponent space, like the lαβ space of Reinhard et al.'s colour
  transfer; its planes are far less correlated than R'G'B' for natural pictures, so matching
  the mean and spread of each plane on its own moves the whole look, not just one channel.
- The transfer `out = val * gain + offset` is linear per plane, so it is one 256-entry
  look-up table per plane (`lutyuv`): nearly free, no conversion, no extra scale.

Drift is *reported* in CIELAB (ΔE 2000 of the mean colours), where a distance means the same
to the eye everywhere. Every decode goes through ffmpeg to a raw pipe and arrives as numpy
arrays, scaled small first; a file ffmpeg cannot decode raises `ProbeError` naming it.
"""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from shorts_pipeline.render.errors import MediaError, ProbeError
from shorts_pipeline.render.files import write_atomic
from shorts_pipeline.render.probe import MediaInfo, ffmpeg_binary, probe_clip

# Sizes frames are analysed at (width in pixels): small enough to decode into numpy fast,
# large enough for what is measured. Colour statistics need no detail at all.
STATS_WIDTH = 96
# Sharpness needs edges but not noise: at 360 px the Laplacian sees structure, and sensor or
# compression grain (a pixel or two wide at 1080p) is averaged away.
SHARPNESS_WIDTH = 360
MOTION_WIDTH = 160  # frame_differences and leading_duplicates
# Later frames win ties: a reference this close to the sharpest costs nothing in sharpness
# and keeps more of the segment before the seam.
SHARPNESS_TIE = 0.02
# Thresholds of leading_duplicates, in mean absolute luma difference (Y' codes) at 160 px.
# Measured on a detailed photo, a smooth gradient and testsrc2, encoded with x264 at CRF
# 18-35, at 480p-1080p, limited and full range, BT.601 and BT.709:
# - a frame repeating frame 0 of its clip differs from it by 0.001-0.16 (within a GOP);
#   one frame of a slow pan (0.5 % of the height per second, 30 fps) over the photo by 0.99.
#   Anything under the threshold that did move moved by less than that in total, so
#   dropping it is invisible.
REPEAT_THRESHOLD = 0.5
# - frame 0 of an H.264 copy of the reference differs from the reference by 0.18-3.96 (the
#   worst: the photo through 480p at CRF 35); an unrelated picture by 31 or more.
REFERENCE_MATCH = 8.0

# BT.709 luma coefficients and limited ("TV") range code values.
KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB
Y_RANGE = (16.0, 235.0)
C_RANGE = (16.0, 240.0)
PLANES = ("Y'", "Cb", "Cr")

Triple = tuple[float, float, float]


# --- reading frames --------------------------------------------------------------------------


def read_frames(
    path: str | Path,
    *,
    start: float = 0.0,
    duration: float | None = None,
    width: int = 96,
    height: int | None = None,
    fps: float | None = None,
) -> np.ndarray:
    """Decoded R'G'B' frames of `path`, shape (N, height, width, 3), uint8.

    Frames are scaled to `width` (height keeps the display aspect unless given), from `start`
    for `duration` seconds (to the end when None), every decoded frame unless `fps` resamples
    them. Rotation metadata and non-square pixels are honoured, as in the render.
    """
    info = _probe(path)
    w, h = _size(info, width, height)
    frames = list(
        _decode(
            info,
            f"scale={w}:{h}:flags=area{_to_rgb(info)},format=rgb24",
            (h, w, 3),
            start=start,
            duration=duration,
            fps=fps,
        )
    )
    if not frames:
        raise ProbeError(str(path), _no_frames(start, duration))
    return np.stack(frames)


def frame_differences(
    path: str | Path,
    *,
    start: float = 0.0,
    duration: float | None = None,
    width: int = MOTION_WIDTH,
) -> np.ndarray:
    """Mean absolute difference of luma (Y' code values, 0-255) between each frame and the
    next, from `start` for `duration` seconds: N frames give N-1 values. A repeated (stalled)
    frame shows as a value near 0 (under 0.15 for an H.264 repeat, see REPEAT_THRESHOLD)."""
    info = _probe(path)
    values: list[float] = []
    previous: np.ndarray | None = None
    for frame in _luma_frames(info, width, start=start, duration=duration):
        if previous is not None:  # one frame at a time: a long clip never sits in memory
            values.append(float(np.abs(frame - previous).mean()))
        previous = frame
    if previous is None:
        raise ProbeError(str(path), _no_frames(start, duration))
    return np.asarray(values, dtype=np.float64)


# --- colour ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameStats:
    """Mean and standard deviation per plane (Y', Cb, Cr; BT.709 limited-range code values)."""

    mean: Triple
    std: Triple


def segment_stats(path: str | Path, *, samples: int = 12) -> FrameStats:
    """Colour statistics of `samples` frames spread evenly over the whole clip, measured in
    the planes the render's colour filter works on."""
    info = _probe(path)
    w, h = _size(info, STATS_WIDTH, None)
    rate = max(samples, 1) / max(info.duration, 1e-3)
    frames = list(
        _decode(
            info,
            f"scale={w}:{h}:flags=area{_to_render_planes(info)},format=yuv444p",
            (3, h, w),  # planar: Y', Cb, Cr
            fps=rate,
        )
    )[: max(samples, 1)]
    if not frames:
        raise ProbeError(str(path), _no_frames(0.0, None))
    planes = np.stack(frames).astype(np.float64)
    mean = planes.mean(axis=(0, 2, 3))
    std = planes.std(axis=(0, 2, 3))
    return FrameStats(mean=_triple(mean), std=_triple(std))


@dataclass(frozen=True)
class ColourMatch:
    """A per-plane linear colour transfer on Y'CbCr: `out = val * gain + offset`, clipped to
    the limited range. The same numbers drive the ffmpeg filter and the image version."""

    gain: Triple
    offset: Triple

    @property
    def identity(self) -> bool:
        """True when no code value moves by half a step or more (the LUT would be a no-op)."""
        for (g, o), (low, high) in zip(self._planes(), (Y_RANGE, C_RANGE, C_RANGE), strict=True):
            # Linear in val, so the largest change is at one end of the range.
            if max(abs(low * (g - 1) + o), abs(high * (g - 1) + o)) >= 0.5:
                return False
        return True

    def ffmpeg_filter(self) -> str:
        """A filter for yuv420p limited-range frames (quoted for a filter graph; numbers
        only), or `null` when the match changes nothing."""
        if self.identity:
            return "null"
        exprs = []
        for name, (g, o), (low, high) in zip(
            "yuv", self._planes(), (Y_RANGE, C_RANGE, C_RANGE), strict=True
        ):
            exprs.append(f"{name}='clip(round(val*{g:.6f}{o:+.4f}),{low:g},{high:g})'")
        return "lutyuv=" + ":".join(exprs)

    def apply_to_image(self, src: str | Path, dest: str | Path) -> None:
        """The same transform on a PNG or JPEG (any size; alpha is kept), written atomically
        to `dest` in the format its suffix names. `src` and `dest` may be the same file."""
        image = _open_image(src)
        alpha = image.getchannel("A") if image.mode in ("RGBA", "LA") else None
        rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
        ycc = rgb_to_ycbcr(rgb)
        for k, ((g, o), (low, high)) in enumerate(
            zip(self._planes(), (Y_RANGE, C_RANGE, C_RANGE), strict=True)
        ):
            ycc[..., k] = np.clip(np.round(ycc[..., k] * g + o), low, high)
        out = Image.fromarray(np.clip(np.round(ycbcr_to_rgb(ycc)), 0, 255).astype(np.uint8))
        if alpha is not None:
            out.putalpha(alpha)
        _save_image(out, Path(dest))

    def apply_to_stats(self, stats: FrameStats) -> FrameStats:
        """The statistics `stats` has after this match (exact but for clipping)."""
        return FrameStats(
            mean=_triple([m * g + o for m, (g, o) in zip(stats.mean, self._planes(), strict=True)]),
            std=_triple([s * abs(g) for s, (g, _) in zip(stats.std, self._planes(), strict=True)]),
        )

    def describe(self) -> str:
        """Short text for metadata, e.g. "Y' ×1.032 −2.1, Cb ×0.981 +2.6, Cr ×1.004 −0.4"."""
        if self.identity:
            return "no change"
        return ", ".join(
            f"{name} ×{g:.3f} {o:+.1f}".replace("-", "−")
            for name, (g, o) in zip(PLANES, self._planes(), strict=True)
        )

    def _planes(self) -> list[tuple[float, float]]:
        return list(zip(self.gain, self.offset, strict=True))


def colour_match(
    source: FrameStats,
    reference: FrameStats,
    *,
    max_gain: float = 2.0,
    min_gain: float = 0.5,
    strength: float = 1.0,
) -> ColourMatch:
    """The transfer that gives `source` the mean and standard deviation of `reference`, plane
    by plane (Reinhard-style). Gains are clamped to [min_gain, max_gain] (a flat source
    would otherwise get an enormous one); the offset then still matches the means.
    `strength` < 1 moves only part of the way (0: identity)."""
    if not 0 < min_gain <= 1 <= max_gain:
        raise ValueError(f"need 0 < min_gain <= 1 <= max_gain, not {min_gain}, {max_gain}")
    strength = min(max(strength, 0.0), 1.0)
    gains, offsets = [], []
    for s_mean, s_std, r_mean, r_std in zip(
        source.mean, source.std, reference.mean, reference.std, strict=True
    ):
        gain = r_std / s_std if s_std > 1e-6 else 1.0
        gain = min(max(gain, min_gain), max_gain)
        offset = r_mean - gain * s_mean
        gains.append(1.0 + strength * (gain - 1.0))
        offsets.append(strength * offset)
    return ColourMatch(gain=_triple(gains), offset=_triple(offsets))


def colour_distance(a: FrameStats | np.ndarray, b: FrameStats | np.ndarray) -> float:
    """ΔE 2000 between the mean colours of `a` and `b`: each is either segment statistics
    or R'G'B' pixels (uint8 or 0-255 floats, any shape ending in 3). About 1 is the smallest
    difference people notice side by side; drift under 2-3 reads as the same shot."""
    return delta_e_2000(_lab(_mean_rgb(a)), _lab(_mean_rgb(b)))


def drift_report(
    paths: Sequence[str | Path], matches: Sequence[ColourMatch] | None = None
) -> list[float]:
    """ΔE of each segment's mean colour against segment 1's (so the first value is 0), after
    applying `matches[k]` to segment k when matches are given (predicted from the
    statistics: exact for the means but for clipping)."""
    if matches is not None and len(matches) != len(paths):
        raise ValueError(f"{len(matches)} colour matches for {len(paths)} segments")
    # Each measure waits on its own ffmpeg: a few at a time finish sooner.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        stats = list(pool.map(segment_stats, paths))
    if matches is not None:
        stats = [m.apply_to_stats(s) for m, s in zip(matches, stats, strict=True)]
    return [colour_distance(s, stats[0]) for s in stats] if stats else []


# --- the reference frame and the joint -------------------------------------------------------


@dataclass(frozen=True)
class TailFrame:
    """The frame chosen to continue from: presentation `time` (seconds from the start),
    frame number `index` (0-based, decode order), `sharpness` (variance of the Laplacian at
    SHARPNESS_WIDTH) and where it was written, at full resolution."""

    time: float
    index: int
    sharpness: float
    path: Path


_SHOWINFO = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(-?\d+)\s+pts_time:\s*(-?[\d.]+(?:e-?\d+)?)")


def sharpest_tail_frame(
    path: str | Path, dest_png: str | Path, *, window: float = 0.5, end: float | None = None
) -> TailFrame:
    """The sharpest of the frames shown in the `window` seconds before `end` (the clip's end
    when None), written full-size to `dest_png` (atomically).

    Generated video often smears its last frames; a blurred reference makes the next segment
    softer still. Sharpness is the variance of the Laplacian of luma at SHARPNESS_WIDTH;
    among frames within SHARPNESS_TIE of the sharpest, the latest wins. One ffmpeg process
    decodes the clip once: small grey frames for the measure, PNGs of the candidates.
    """
    info = _probe(path)
    dest = Path(dest_png)
    fps = info.fps or 30.0
    stop = info.duration if end is None else min(max(end, 0.0), info.duration)
    first = max(0.0, min(stop - window, stop - 1.0 / fps))
    eps = 1e-3
    w, h = _size(info, SHARPNESS_WIDTH, None)
    select = f"select='gte(t,{first - eps:.6f})*lt(t,{stop - eps:.6f})'"
    graph = (
        f"[0:v]showinfo,{select},split=2[a][b];"
        f"[a]scale={w}:{h}:flags=area,format=gray[small];"
        f"[b]scale={info.display_width}:{info.display_height}:flags=bicubic{_to_rgb(info)},"
        "format=rgb24,setsar=1[full]"
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".tail-", dir=dest.parent))
    try:
        log: list[str] = []
        args = [
            "-t",
            f"{stop + 2.0 / fps:.4f}",
            "-i",
            info.path,
            "-filter_complex",
            graph,
            "-map",
            "[small]",
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "pipe:1",
            "-map",
            "[full]",
            "-fps_mode",
            "passthrough",
            "-start_number",
            "0",
            "-compression_level",
            "3",
            str(scratch / "%05d.png"),
        ]
        scores = [_sharpness(f) for f in _pipe(info.path, args, (h, w), log=log)]
        shown = [
            (int(n), float(t))
            for n, _, t in _SHOWINFO.findall("".join(log))
            if first - eps <= float(t) < stop - eps
        ]
        if not scores:
            raise ProbeError(info.path, f"no frame to continue from before {stop:.2f} s")
        if len(shown) != len(scores):
            raise ProbeError(
                info.path, f"frame timing unclear ({len(shown)} times for {len(scores)} frames)"
            )
        best = max(scores)
        pick = max(k for k, s in enumerate(scores) if s >= best * (1 - SHARPNESS_TIE))
        chosen = scratch / f"{pick:05d}.png"
        if not chosen.exists():
            raise ProbeError(info.path, f"frame {shown[pick][0]} could not be written as PNG")
        os.chmod(chosen, 0o644)
        os.replace(chosen, dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    index, time = shown[pick]
    return TailFrame(time=time, index=index, sharpness=scores[pick], path=dest)


def leading_duplicates(
    path: str | Path,
    reference_png: str | Path,
    *,
    max_seconds: float = 0.5,
    threshold: float = REPEAT_THRESHOLD,
    match_threshold: float = REFERENCE_MATCH,
) -> int:
    """How many frames at the start of `path` show the reference picture: 0 when frame 0 is
    not the reference, 1 when frame 0 is and frame 1 already moves on, 3 when frames 0-2 all
    show it. Dropping that many frames removes the stall at the joint.

    Frame 0 is the reference when their luma differs by less than `match_threshold` once a
    global brightness/contrast change is allowed for (the generator and its encoder shift
    those, and nobody knows which Y'CbCr matrix they used). Later frames repeat it while
    they differ from frame 0 by less than `threshold`; counting stops at the first that
    does not, or after `max_seconds`. Comparing with frame 0 rather than with the previous
    frame bounds what is dropped: even a slow drift is cut at `threshold` in total.
    """
    info = _probe(path)
    frames = list(_luma_frames(info, MOTION_WIDTH, duration=max_seconds))
    if not frames:
        raise ProbeError(str(path), _no_frames(0.0, max_seconds))
    h, w = frames[0].shape
    picture = _picture(reference_png, w, h, info.display_width / info.display_height)
    if reference_mismatch(frames[0], picture) >= match_threshold:
        return 0
    count = 1
    for frame in frames[1:]:
        if float(np.abs(frame - frames[0]).mean()) >= threshold:
            break
        count += 1
    return count


def reference_mismatch(luma: np.ndarray, picture: np.ndarray) -> float:
    """How far a decoded frame's luma plane (Y' codes) is from an R'G'B' picture of the same
    size: the mean absolute residual after the best gain and offset, with the picture's luma
    taken with the BT.709 or the BT.601 weights, whichever fits (an encoder may use either)."""
    y = luma.astype(np.float64).ravel()
    best = math.inf
    for kr, kb in ((KR, KB), (0.299, 0.114)):
        ref = (
            kr * picture[..., 0] + (1 - kr - kb) * picture[..., 1] + kb * picture[..., 2]
        ).ravel()
        design = np.stack([ref, np.ones_like(ref)], axis=1)
        (gain, offset), *_ = np.linalg.lstsq(design, y, rcond=None)
        if gain > 0:
            best = min(best, float(np.abs(y - (gain * ref + offset)).mean()))
    return best


# --- colour maths ----------------------------------------------------------------------------

_RGB_TO_YCC = np.array(
    [
        [KR, KG, KB],
        [-KR / (2 * (1 - KB)), -KG / (2 * (1 - KB)), 0.5],
        [0.5, -KG / (2 * (1 - KR)), -KB / (2 * (1 - KR))],
    ]
)
_YCC_TO_RGB = np.linalg.inv(_RGB_TO_YCC)
_YCC_SCALE = np.array([219.0, 224.0, 224.0])
_YCC_OFFSET = np.array([16.0, 128.0, 128.0])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """R'G'B' (0-255, any shape ending in 3) to BT.709 limited-range Y'CbCr code values."""
    return (np.asarray(rgb, dtype=np.float64) / 255.0) @ _RGB_TO_YCC.T * _YCC_SCALE + _YCC_OFFSET


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """BT.709 limited-range Y'CbCr code values to R'G'B' (0-255, not clipped)."""
    return ((np.asarray(ycc, dtype=np.float64) - _YCC_OFFSET) / _YCC_SCALE) @ _YCC_TO_RGB.T * 255.0


# sRGB (BT.709 primaries, D65) to CIE XYZ, and the D65 white point.
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_WHITE = np.array([0.95047, 1.0, 1.08883])


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB of one R'G'B' colour (0-255), decoded with the sRGB transfer curve."""
    c = np.clip(np.asarray(rgb, dtype=np.float64) / 255.0, 0.0, 1.0)
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = _RGB_TO_XYZ @ linear / _WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def delta_e_2000(lab1: Sequence[float] | np.ndarray, lab2: Sequence[float] | np.ndarray) -> float:
    """CIEDE2000 colour difference between two CIELAB colours (Sharma, Wu, Dalal 2005)."""
    l1, a1, b1 = (float(v) for v in lab1)
    l2, a2, b2 = (float(v) for v in lab2)
    c_bar = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360 if c1p else 0.0
    h2p = math.degrees(math.atan2(b2, a2p)) % 360 if c2p else 0.0

    dl = l2 - l1
    dc = c2p - c1p
    if c1p * c2p == 0:
        dh = 0.0
    elif abs(h2p - h1p) <= 180:
        dh = h2p - h1p
    else:
        dh = h2p - h1p - 360 if h2p > h1p else h2p - h1p + 360
    dh_big = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dh / 2))

    l_bar = (l1 + l2) / 2
    cp_bar = (c1p + c2p) / 2
    if c1p * c2p == 0:
        hp_bar = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        hp_bar = (h1p + h2p) / 2
    else:
        hp_bar = (h1p + h2p + 360) / 2 if h1p + h2p < 360 else (h1p + h2p - 360) / 2
    t = (
        1
        - 0.17 * math.cos(math.radians(hp_bar - 30))
        + 0.24 * math.cos(math.radians(2 * hp_bar))
        + 0.32 * math.cos(math.radians(3 * hp_bar + 6))
        - 0.20 * math.cos(math.radians(4 * hp_bar - 63))
    )
    d_theta = 30 * math.exp(-(((hp_bar - 275) / 25) ** 2))
    r_c = 2 * math.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / math.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * t
    r_t = -math.sin(math.radians(2 * d_theta)) * r_c
    return math.sqrt(
        (dl / s_l) ** 2 + (dc / s_c) ** 2 + (dh_big / s_h) ** 2 + r_t * (dc / s_c) * (dh_big / s_h)
    )


def _mean_rgb(value: FrameStats | np.ndarray) -> np.ndarray:
    if isinstance(value, FrameStats):
        return ycbcr_to_rgb(np.asarray(value.mean))
    pixels = np.asarray(value, dtype=np.float64)
    if pixels.ndim == 0 or pixels.shape[-1] != 3 or pixels.size == 0:
        raise ValueError(f"expected R'G'B' pixels (..., 3), not an array of shape {pixels.shape}")
    return pixels.reshape(-1, 3).mean(axis=0)


def _sharpness(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: high when edges are crisp."""
    g = gray.astype(np.float32)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return float(lap.var())


def _triple(values: Sequence[float] | np.ndarray) -> Triple:
    a, b, c = (float(v) for v in values)
    return (a, b, c)


# --- decoding --------------------------------------------------------------------------------


def _probe(path: str | Path) -> MediaInfo:
    # Analysis reads any length of clip; the tail check is for downloads, not for this.
    return probe_clip(path, min_seconds=0.0, check_tail=False)


def _size(info: MediaInfo, width: int, height: int | None) -> tuple[int, int]:
    if width < 1 or (height is not None and height < 1):
        raise ValueError(f"frame size must be positive, not {width}x{height}")
    if height is None:
        height = max(1, round(width * info.display_height / info.display_width))
    return width, height


def _is_bt601(info: MediaInfo) -> bool:
    # The render's rule (timeline.py): the tag when there is one, else SD is BT.601.
    if info.color_matrix:
        return info.color_matrix in {"smpte170m", "bt470bg", "bt601"}
    return min(info.display_width, info.display_height) < 720


def _to_rgb(info: MediaInfo) -> str:
    """scale options that decode Y'CbCr to R'G'B' with the clip's own matrix."""
    return f":in_color_matrix={'bt601' if _is_bt601(info) else 'bt709'}"


def _to_render_planes(info: MediaInfo) -> str:
    """scale options that leave the planes as the render's fit leaves them."""
    return ":out_range=tv" + (
        ":in_color_matrix=bt601:out_color_matrix=bt709" if _is_bt601(info) else ""
    )


def _luma_frames(
    info: MediaInfo, width: int, *, start: float = 0.0, duration: float | None = None
) -> Iterator[np.ndarray]:
    """The luma plane as decoded (no matrix involved), scaled to `width`, as float32."""
    w, h = _size(info, width, None)
    frames = _decode(
        info, f"scale={w}:{h}:flags=area,format=gray", (h, w), start=start, duration=duration
    )
    return (frame.astype(np.float32) for frame in frames)


def _decode(
    info: MediaInfo,
    vf: str,
    shape: tuple[int, ...],
    *,
    start: float = 0.0,
    duration: float | None = None,
    fps: float | None = None,
) -> Iterator[np.ndarray]:
    args: list[str] = []
    if start > 0:
        args += ["-ss", f"{start:.4f}"]
    if duration is not None:
        args += ["-t", f"{max(duration, 0.0):.4f}"]
    chain = (f"fps={fps:.6f}," if fps else "") + vf
    args += ["-i", info.path, "-map", "0:v:0", "-vf", chain, "-fps_mode", "passthrough"]
    args += ["-f", "rawvideo", "pipe:1"]
    return _pipe(info.path, args, shape)


def _pipe(
    path: str,
    args: list[str],
    shape: tuple[int, ...],
    log: list[str] | None = None,
    what: str = "its video frames",
) -> Iterator[np.ndarray]:
    """Runs ffmpeg writing raw frames of `shape` (uint8) to stdout and yields them one by
    one. stderr goes to a temporary file (a pipe could fill up and stall ffmpeg); its text
    is appended to `log` when given. Raises ProbeError naming `path` if ffmpeg fails."""
    size = math.prod(shape)
    cmd = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-nostats", "-y"]
    cmd += ["-v", "info" if log is not None else "error", *args]
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors)
        try:
            stdout: IO[bytes] = proc.stdout  # type: ignore[assignment]
            while chunk := stdout.read(size):
                if len(chunk) < size:
                    break  # a partial frame at the end: ffmpeg stopped mid-write
                yield np.frombuffer(chunk, dtype=np.uint8).reshape(shape)
            returncode = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()
        errors.seek(0)
        text = errors.read().decode("utf-8", "replace")
    if log is not None:
        log.append(text)
    if returncode != 0:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "n:" not in ln]
        reason = lines[-1] if lines else f"ffmpeg exit {returncode}"
        raise ProbeError(path, f"cannot decode {what} ({reason})")


def _no_frames(start: float, duration: float | None) -> str:
    span = f"from {start:.2f} s" + (f" for {duration:.2f} s" if duration is not None else "")
    return f"no video frames decoded {span}"


# --- images ----------------------------------------------------------------------------------


def _open_image(path: str | Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise MediaError(f"{path}: cannot read image: {error}") from error


def _picture(path: str | Path, width: int, height: int, aspect: float) -> np.ndarray:
    """An image cover-cropped to `aspect` and scaled to width x height by the same ffmpeg
    scaler as the frames it is compared with (another resampler would shift fine detail by
    a fraction of a pixel and add a difference of its own), as float32 R'G'B'."""
    crop = f"crop=w='min(iw,ih*{aspect:.6f})':h='min(ih,iw/{aspect:.6f})'"
    args = ["-i", str(path), "-frames:v", "1", "-vf", f"{crop},scale={width}:{height}:flags=area"]
    args += ["-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]
    for frame in _pipe(str(path), args, (height, width, 3), what="it as an image"):
        return frame.astype(np.float32)
    raise MediaError(f"{path}: cannot read image: no picture decoded")


def _save_image(image: Image.Image, dest: Path) -> None:
    suffix = dest.suffix.lower()
    buffer = io.BytesIO()
    if suffix in (".jpg", ".jpeg"):
        image.convert("RGB").save(buffer, "JPEG", quality=95)
    elif suffix == ".webp":
        image.save(buffer, "WEBP", quality=95)
    else:
        image.save(buffer, "PNG", compress_level=3)
    write_atomic(dest, buffer.getvalue())
