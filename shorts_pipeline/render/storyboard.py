"""The offline video "provider" of extend videos: an animated storyboard of each planned segment.

Each segment gets a panel, a small illustration drawn from its prompt (sky and ground colours
from the words in it, a sun or moon that crosses the sky over the chain, hills, trees,
waves, dunes or buildings), filmed with a slow camera move. From segment 2 on, the segment
starts exactly on the previous segment's last frame (the reference, as a real image-to-video
model would) and cross-dissolves into its own panel over the first 40 %, so the chain stays
continuous while each segment shows its own plan. The caption overlay that says it is a
storyboard, and what the segment is meant to show, is a separate RGBA PNG.

The camera. A panel is drawn larger than the frame and at 2x or more, and the camera is a
frame-sized window moved over it by whole pixels of that big canvas: a crop, which costs
nothing, then one fixed downscale (a zoom would need a new scale per frame, four times the
cost). The window moves at least one canvas pixel every frame, so there is no still frame
and no stair-step. Pans alternate with the segment number (up-right, down-right, up-left,
down-left), so a chain does not drift one way for a minute. The outgoing reference layer
keeps moving too: it zooms in (which needs no picture beyond its edges) anchored on the
side the previous segment was panning towards, so the motion carries on across the seam.
Everything runs in one ffmpeg process; the file appears atomically.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import math
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from shorts_pipeline.render.errors import MediaError
from shorts_pipeline.render.ffmpeg_run import run_ffmpeg
from shorts_pipeline.render.files import write_atomic
from shorts_pipeline.render.geometry import safe_area
from shorts_pipeline.render.text import draw_text, fit_text, text_block_size

RGB = tuple[int, int, int]

DISSOLVE = 0.4  # share of a segment over which the reference dissolves into the panel
PAN_SPEED = 0.03  # frame heights per second the camera travels (gentle, still visible)
PAN_SIDEWAYS = 0.4  # sideways travel relative to the vertical travel
REFERENCE_ZOOM = 2 * PAN_SPEED  # the outgoing reference grows by this share of itself a second
# The canvas moves by at least this many of its pixels per frame, so no two frames match.
MIN_STEP = 3.0
CAPTION_LABEL = "STORYBOARD"
STREAK_LEVELS = 6.0  # brush streaks over a panel: up to this many levels lighter or darker

# (camera direction up/down, sideways) for segment index % 4; -1 = up or left.
_PANS: tuple[tuple[int, int], ...] = ((-1, 1), (1, 1), (-1, -1), (1, -1))


def draw_storyboard_panel(
    dest: str | Path, *, prompt: str, index: int, count: int, width: int, height: int
) -> Path:
    """Writes the panel of segment `index` (0-based) of `count` as a PNG of width x height:
    deterministic for a prompt, no text on it. Returns `dest`."""
    if width < 2 or height < 2:
        raise ValueError(f"panel size must be at least 2x2, not {width}x{height}")
    # Drawn at twice the size and halved: polygons and discs get smooth edges.
    image = _draw_panel(prompt, index, count, (2 * width, 2 * height)).reduce(2)
    _save_png(image, Path(dest))
    return Path(dest)


def render_storyboard_segment(
    dest: str | Path,
    *,
    prompt: str,
    index: int,
    count: int,
    seconds: float,
    width: int,
    height: int,
    fps: int = 30,
    reference: str | Path | None = None,
) -> Path:
    """Writes segment `index` (0-based) of `count` as an H.264 yuv420p MP4 of exactly
    round(seconds * fps) frames at `fps`, without audio: its panel under a slow pan and,
    with `reference` (any size; cover-fitted), starting on the reference and dissolving into
    the panel over the first DISSOLVE of the segment. Returns `dest`."""
    frames = round(seconds * fps)
    if frames < 1 or fps <= 0:
        raise ValueError(f"a segment needs at least one frame, not {seconds} s at {fps} fps")
    if width < 16 or height < 16:
        raise ValueError(f"segment size must be at least 16x16, not {width}x{height}")
    if reference is not None and not Path(reference).is_file():
        raise MediaError(f"{reference}: reference image not found")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    plan = _camera_plan(index, frames, fps, width, height)
    canvas = dest.with_name(f".{dest.stem}.panel.png")
    partial = dest.with_name(f".{dest.stem}.partial.mp4")
    try:
        image = _draw_panel(prompt, index, count, (plan.canvas_w, plan.canvas_h))
        image.save(canvas, "PNG", compress_level=1)  # read once by ffmpeg, then deleted
        inputs = ["-framerate", str(fps), "-i", str(canvas)]
        graph = _panel_chain(plan, "panel" if reference is not None else "out")
        dissolve = min(frames - 1, round(DISSOLVE * frames))
        if reference is not None and dissolve > 0:
            inputs += ["-framerate", str(fps), "-i", str(reference)]
            graph += ";" + _reference_chain(plan, index, dissolve, "1:v", "ref")
            graph += f";[ref][panel]xfade=transition=fade:duration={dissolve / fps:.6f}:offset=0"
            graph += f",trim=end_frame={frames}[out]"
        elif reference is not None:  # a single frame: the reference itself
            inputs = ["-framerate", str(fps), "-i", str(reference)]
            graph = _reference_chain(plan, index, frames, "0:v", "out")
        run_ffmpeg(
            [
                *inputs,
                "-filter_complex",
                graph,
                "-map",
                "[out]",
                "-frames:v",
                str(frames),
                "-r",
                str(fps),
                "-c:v",
                "libx264",
                # An intermediate: the video stage encodes it again, so encode it cheaply.
                "-preset",
                "ultrafast",
                "-crf",
                "16",
                "-profile:v",
                "high",
                "-pix_fmt",
                "yuv420p",
                "-colorspace",
                "bt709",
                "-color_primaries",
                "bt709",
                "-color_trc",
                "bt709",
                "-color_range",
                "tv",
                "-an",
                "-movflags",
                "+faststart",
                str(partial),
            ],
            what=f"storyboard segment {index + 1}/{count}",
        )
        os.replace(partial, dest)
    finally:
        canvas.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    return dest


def draw_storyboard_caption(
    dest: str | Path,
    *,
    prompt: str,
    index: int,
    count: int,
    width: int,
    height: int,
    position: Literal["top", "bottom"] = "bottom",
) -> tuple[Path, int, int]:
    """Writes the overlay that labels segment `index` (0-based) as "STORYBOARD · 3/6" above
    its prompt (up to 3 lines, ellipsized) on a translucent band, as an RGBA PNG the size of
    the band. Returns the path and where the band goes on a width x height frame: inside the
    safe area, at its top or bottom."""
    safe = safe_area(width, height)
    scale = min(width, height) / 1080  # text sized by the short side: 16:9 reads like 9:16
    pad_x, pad_y = round(36 * scale), round(26 * scale)
    inner = safe.width - 2 * pad_x
    label = f"{CAPTION_LABEL} · {index + 1}/{count}"
    label_size, label_lines = fit_text(label, inner, 1, round(34 * scale), round(20 * scale))
    text_size, text_lines = fit_text(
        prompt, inner, 3, round(46 * scale), round(30 * scale), bold=False, balance=False
    )
    label_h = text_block_size(label_lines, label_size)[1]
    text_h = text_block_size(text_lines, text_size, bold=False)[1]
    gap = round(10 * scale) if text_lines else 0
    band_h = min(safe.height, pad_y * 2 + label_h + gap + text_h)

    band = Image.new("RGBA", (safe.width, band_h))
    ImageDraw.Draw(band).rounded_rectangle(
        (0, 0, safe.width - 1, band_h - 1), round(28 * scale), fill=(12, 14, 24, 168)
    )
    draw_text(band, (pad_x, pad_y), label_lines, label_size, fill=_CAPTION_ACCENT, anchor="la")
    if text_lines:
        draw_text(
            band,
            (pad_x, pad_y + label_h + gap),
            text_lines,
            text_size,
            fill=(255, 255, 255),
            align="left",
            anchor="la",
            bold=False,
        )
    y = safe.top if position == "top" else safe.bottom - band_h
    _save_png(band, Path(dest))
    return Path(dest), safe.left, y


_CAPTION_ACCENT: RGB = (255, 204, 102)


# --- camera ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CameraPlan:
    """The frame-sized window's travel over a canvas `factor` times the frame's resolution."""

    width: int
    height: int
    fps: int
    frames: int
    factor: int
    canvas_w: int
    canvas_h: int
    window_w: int
    window_h: int
    start: tuple[int, int]  # window's top-left on the canvas at frame 0
    step: tuple[float, float]  # canvas pixels per frame


def _camera_plan(index: int, frames: int, fps: int, width: int, height: int) -> _CameraPlan:
    vertical, sideways = _PANS[index % len(_PANS)]
    # Canvas resolution: at least twice the frame (smooth sub-pixel motion once scaled
    # down) and enough that the slow pan still crosses MIN_STEP canvas pixels a frame.
    factor = max(2, math.ceil(MIN_STEP * fps / (PAN_SPEED * height)))
    window_w, window_h = width * factor, height * factor
    step_y = PAN_SPEED * window_h / fps
    step_x = PAN_SIDEWAYS * step_y
    travel_x, travel_y = math.ceil(step_x * (frames - 1)), math.ceil(step_y * (frames - 1))
    canvas_w, canvas_h = window_w + travel_x, window_h + travel_y
    start = (0 if sideways > 0 else travel_x, 0 if vertical > 0 else travel_y)
    return _CameraPlan(
        width=width,
        height=height,
        fps=fps,
        frames=frames,
        factor=factor,
        canvas_w=canvas_w,
        canvas_h=canvas_h,
        window_w=window_w,
        window_h=window_h,
        start=start,
        step=(sideways * step_x, vertical * step_y),
    )


def _panel_chain(plan: _CameraPlan, out: str) -> str:
    """The big canvas, converted once, repeated, cropped by the moving window, scaled down."""
    (x0, y0), (dx, dy) = plan.start, plan.step
    return (
        f"[0:v]scale=out_color_matrix=bt709:out_range=tv,format=yuv444p,"
        f"loop=loop={plan.frames - 1}:size=1:start=0,settb=1/{plan.fps},setpts=N,"
        f"crop={plan.window_w}:{plan.window_h}:x='{x0}+round(n*{dx:.6f})':y='{y0}+round(n*{dy:.6f})',"
        f"scale={plan.width}:{plan.height}:flags=bilinear,format=yuv420p,setsar=1,"
        f"trim=end_frame={plan.frames}[{out}]"
    )


def _reference_chain(plan: _CameraPlan, index: int, frames: int, src: str, out: str) -> str:
    """The reference, cover-fitted, zooming in from exactly itself (frame 0 is the reference
    untouched), anchored on the side the previous segment's camera was moving to.

    A zoom is a scale to a new size every frame, then a crop; done at the frame's own size
    (enlarged just enough that the size changes every frame) it costs a fifth of a
    sub-pixel warp, and whole-pixel steps of a fading layer do not show."""
    vertical, sideways = _PANS[(index - 1) % len(_PANS)]
    fps = plan.fps
    factor = max(1, math.ceil(fps / (REFERENCE_ZOOM * max(plan.width, plan.height))))
    w, h = plan.width * factor, plan.height * factor
    grow = f"(1+{REFERENCE_ZOOM}*n/{fps})"
    # Where the frame-sized window sits on the enlarged picture: 0 = left/top edge kept.
    ax, ay = (1 + PAN_SIDEWAYS * sideways) / 2, (1 + vertical) / 2
    chain = (
        f"[{src}]scale={w}:{h}:force_original_aspect_ratio=increase:flags=bicubic"
        f":out_color_matrix=bt709:out_range=tv,crop={w}:{h},format=yuv444p,setsar=1,"
        f"loop=loop={frames - 1}:size=1:start=0,settb=1/{fps},setpts=N,"
        f"scale=w='round({w}*{grow})':h='round({h}*{grow})':eval=frame:flags=bilinear,"
        f"crop={w}:{h}:x='round((round({w}*{grow})-{w})*{ax:.3f})'"
        f":y='round((round({h}*{grow})-{h})*{ay:.3f})',"
    )
    if factor > 1:
        chain += f"scale={plan.width}:{plan.height}:flags=area,"
    return chain + f"format=yuv420p,setsar=1,trim=end_frame={frames}[{out}]"


# --- the panel -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Look:
    """What a prompt's words make of a panel."""

    time: Literal["day", "dusk", "night"]
    place: Literal["hills", "forest", "ocean", "snow", "desert", "city", "mountains"]
    sky: tuple[RGB, RGB]  # zenith, horizon
    ground: tuple[RGB, RGB]  # far, near
    disc: RGB  # sun or moon


# Keywords are matched at the start of words, so "forests" and "바다에서" count.
_TIMES: dict[str, tuple[str, ...]] = {
    "day": ("day", "morning", "noon", "sunny", "afternoon", "아침", "낮", "한낮"),
    "night": ("night", "midnight", "moon", "starry", "stars", "밤", "야경", "달빛", "별빛"),
    "dusk": (
        *("dusk", "sunset", "sundown", "twilight", "evening", "dawn", "sunrise", "golden"),
        *("노을", "석양", "황혼", "새벽", "일출", "해질"),
    ),
}
_PLACES: dict[str, tuple[str, ...]] = {
    "city": ("city", "street", "town", "urban", "downtown", "skyline", "building", "도시", "빌딩"),
    "ocean": (
        *("ocean", "sea", "beach", "wave", "coast", "shore", "surf", "lake", "harbo"),
        *("바다", "해변", "파도", "호수", "항구"),
    ),
    "forest": ("forest", "wood", "jungle", "tree", "grove", "숲", "나무", "정글"),
    "snow": ("snow", "winter", "ice", "glacier", "frozen", "arctic", "설원", "겨울", "빙하"),
    "desert": ("desert", "sand", "dune", "sahara", "사막", "모래"),
    "mountains": ("mountain", "peak", "alps", "cliff", "산맥", "봉우리"),
    "hills": ("hill", "meadow", "field", "valley", "countryside", "언덕", "들판", "초원"),
}
_SKIES: dict[str, tuple[RGB, RGB]] = {
    "day": ((92, 146, 212), (204, 226, 240)),
    "dusk": ((58, 46, 112), (242, 156, 104)),
    "night": ((8, 12, 36), (34, 54, 102)),
}
_GROUNDS: dict[str, tuple[RGB, RGB]] = {
    "hills": ((128, 166, 124), (52, 98, 62)),
    "forest": ((84, 132, 92), (24, 66, 42)),
    "ocean": ((74, 134, 186), (18, 58, 112)),
    "snow": ((214, 224, 240), (246, 248, 252)),
    "desert": ((226, 188, 128), (188, 134, 76)),
    "city": ((118, 124, 140), (52, 56, 68)),
    "mountains": ((132, 142, 172), (76, 88, 116)),
}
_DISCS: dict[str, RGB] = {"day": (255, 244, 214), "dusk": (255, 198, 120), "night": (236, 236, 218)}


def _look(prompt: str, rng: random.Random) -> _Look:
    words = re.findall(r"\w+", prompt.casefold())

    def said(keys: tuple[str, ...]) -> bool:
        return any(word.startswith(key) for word in words for key in keys)

    time = next((t for t, keys in _TIMES.items() if said(keys)), None)
    place = next((p for p, keys in _PLACES.items() if said(keys)), None)
    if time is None and place is None:
        return _hashed_look(rng)
    time = time or "day"
    place = place or "hills"
    sky = _SKIES[time]
    if time == "day" and place == "city":
        sky = ((124, 138, 162), (204, 208, 216))
    elif time == "day" and place == "desert":
        sky = ((84, 150, 218), (246, 222, 182))
    elif time == "day" and place == "snow":
        sky = ((150, 178, 214), (226, 234, 244))
    far, near = _GROUNDS[place]
    if time == "dusk":  # the ground takes the evening light: darker, warmer, a touch purple
        far, near = _tint(far, (120, 70, 110), 0.45, 0.85), _tint(near, (70, 40, 70), 0.4, 0.75)
    elif time == "night":
        far, near = _tint(far, (20, 30, 70), 0.6, 0.4), _tint(near, (10, 14, 34), 0.6, 0.3)
    return _Look(time, place, sky, (far, near), _DISCS[time])  # type: ignore[arg-type]


def _hashed_look(rng: random.Random) -> _Look:
    """A calm palette of its own for a prompt without any of our words: hue from the hash,
    low saturation, a ground hue a little way round the wheel."""
    hue = rng.random()

    def hsv(h: float, s: float, v: float) -> RGB:
        r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
        return (round(r * 255), round(g * 255), round(b * 255))

    sky = (hsv(hue, 0.42, 0.72), hsv(hue + 0.05, 0.22, 0.95))
    ground = (hsv(hue + 0.3, 0.3, 0.62), hsv(hue + 0.33, 0.42, 0.36))
    return _Look("day", "hills", sky, ground, hsv(hue + 0.1, 0.15, 1.0))


def _draw_panel(prompt: str, index: int, count: int, size: tuple[int, int]) -> Image.Image:
    width, height = size
    seed = int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:8], "big")
    rng = random.Random(seed)
    look = _look(prompt, rng)
    unit = min(width, height)
    horizon = round(height * (0.6 if height >= width else 0.62))

    image = _vertical_gradient((width, height), look.sky[0], look.sky[1], 0, horizon)
    draw = ImageDraw.Draw(image)
    if look.time == "night":
        _stars(draw, rng, width, horizon, unit)
    progress = (index % max(count, 1) + 0.5) / max(count, 1)
    _disc(image, look, progress, horizon, unit)
    if look.time != "night":
        _clouds(image, rng, horizon, unit)
    draw = ImageDraw.Draw(image)
    painter = {
        "hills": _hills,
        "forest": _forest,
        "ocean": _ocean,
        "snow": _mountains,
        "mountains": _mountains,
        "desert": _dunes,
        "city": _city,
    }[look.place]
    painter(image, draw, rng, look, horizon, progress)
    return _brush_streaks(image, rng)


def _brush_streaks(image: Image.Image, rng: random.Random) -> Image.Image:
    """Faint horizontal brush streaks over the whole panel, like a painted board, fading in
    and out along their length. Flat colour shows no motion; these give the slow pan
    something to move over."""
    width, height = image.size
    unit = min(width, height)
    levels = np.empty(height, np.float32)
    at = 0
    while at < height:
        run = max(1, round(unit * rng.uniform(0.006, 0.022)))
        levels[at : at + run] = rng.uniform(-STREAK_LEVELS, STREAK_LEVELS)
        at += run
    soft = max(1, round(unit * 0.003))  # soft edges, like a dry brush
    kernel = np.ones(2 * soft + 1, np.float32) / (2 * soft + 1)
    rows = np.convolve(np.pad(levels, soft, mode="edge"), kernel, mode="valid")
    x = np.linspace(0, 2 * math.pi, width, dtype=np.float32)
    phase_a, phase_b = rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)
    along = 0.75 + 0.15 * np.sin(x + phase_a) + 0.1 * np.sin(2.7 * x + phase_b)
    pixels = np.asarray(image, dtype=np.int16)
    pixels += np.round(rows[:, None] * along[None, :]).astype(np.int16)[:, :, None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _vertical_gradient(
    size: tuple[int, int], top: RGB, bottom: RGB, y0: int, y1: int
) -> Image.Image:
    """An RGB image that is `top` above y0, `bottom` below y1 and blends (eased) between."""
    width, height = size
    y = np.arange(height, dtype=np.float32)
    t = np.clip((y - y0) / max(y1 - y0, 1), 0.0, 1.0)
    t = t * t * (3 - 2 * t)
    column = (
        np.asarray(top, np.float32) * (1 - t[:, None]) + np.asarray(bottom, np.float32) * t[:, None]
    )
    rows = np.round(column).astype(np.uint8)[:, None, :]
    return Image.fromarray(np.ascontiguousarray(np.broadcast_to(rows, (height, width, 3))))


def _stars(
    draw: ImageDraw.ImageDraw, rng: random.Random, width: int, horizon: int, unit: int
) -> None:
    for _ in range(140):
        x, y = rng.uniform(0, width), rng.uniform(0, horizon * 0.85)
        r = unit * rng.uniform(0.0015, 0.004)
        level = rng.randint(150, 255)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(level, level, min(255, level + 10)))


def _disc(image: Image.Image, look: _Look, progress: float, horizon: int, unit: int) -> None:
    """The sun (or moon) on an arc across the sky: the chain's progress moves it along."""
    width = image.width
    cx = width * (0.18 + 0.64 * progress)
    cy = horizon - unit * (0.16 + 0.34 * math.sin(math.pi * progress))
    radius = unit * (0.07 if look.time != "night" else 0.06)
    # A soft glow, drawn small and scaled up (a wide blur at full size is slow).
    small = 8
    glow = Image.new("L", (max(1, width // small), max(1, image.height // small)))
    g = radius * 2.6 / small
    ImageDraw.Draw(glow).ellipse(
        (cx / small - g, cy / small - g, cx / small + g, cy / small + g), fill=110
    )
    glow = glow.filter(ImageFilter.GaussianBlur(radius * 1.2 / small)).resize(image.size)
    image.paste(look.disc, (0, 0), glow)
    draw = ImageDraw.Draw(image)
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=look.disc)
    if look.time == "night":  # a crescent: the sky's colour bites the disc
        bite = (cx + radius * 0.45, cy - radius * 0.25)
        sky = image.getpixel((round(min(width - 1, cx + radius * 1.6)), round(max(0, cy))))
        draw.ellipse(
            (bite[0] - radius, bite[1] - radius, bite[0] + radius, bite[1] + radius),
            fill=sky,
        )


def _clouds(image: Image.Image, rng: random.Random, horizon: int, unit: int) -> None:
    layer = Image.new("RGBA", image.size)
    draw = ImageDraw.Draw(layer)
    for _ in range(rng.randint(3, 5)):
        cx, cy = rng.uniform(0, image.width), rng.uniform(horizon * 0.12, horizon * 0.7)
        for _ in range(5):
            w, h = unit * rng.uniform(0.08, 0.16), unit * rng.uniform(0.03, 0.055)
            x, y = cx + rng.uniform(-1.2, 1.2) * w, cy + rng.uniform(-0.5, 0.5) * h
            draw.ellipse((x - w, y - h, x + w, y + h), fill=(255, 255, 255, 120))
    image.paste(layer, (0, 0), layer)


def _ridge(
    width: int, base: float, amplitude: float, rng: random.Random, steps: int = 48
) -> list[tuple[float, float]]:
    """A hill line: a few sines with random phases, as polygon points."""
    waves = [(rng.uniform(0.6, 1.4) * k, rng.uniform(0, 2 * math.pi), 1 / k) for k in (1, 2, 3.5)]
    points = []
    for i in range(steps + 1):
        x = width * i / steps
        u = i / steps * 2 * math.pi
        y = base - amplitude * sum(a * math.sin(f * u + p) for f, p, a in waves) / 1.8
        points.append((x, y))
    return points


def _layers(look: _Look, n: int) -> list[RGB]:
    far, near = look.ground
    return [_mix(far, near, k / max(n - 1, 1)) for k in range(n)]


def _fill_below(
    draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], bottom: int, fill: RGB
) -> None:
    draw.polygon([*points, (points[-1][0], bottom), (points[0][0], bottom)], fill=fill)


def _hills(
    image: Image.Image,
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    look: _Look,
    horizon: int,
    progress: float,
) -> None:
    width, height = image.size
    unit = min(width, height)
    colours = _layers(look, 4)
    for k, colour in enumerate(colours):
        base = horizon + (height - horizon) * (0.02 + 0.22 * k)
        _fill_below(draw, _ridge(width, base, unit * (0.07 - 0.01 * k), rng), height, colour)
    # Meadow strokes on the nearest hill: texture the camera can be seen moving over.
    light = _mix(colours[-1], (255, 255, 255), 0.18)
    for _ in range(90):
        x = rng.uniform(0, width)
        y = rng.uniform(horizon + (height - horizon) * 0.72, height)
        w = unit * rng.uniform(0.02, 0.05)
        draw.line((x - w, y, x + w, y - w * 0.15), fill=light, width=max(1, round(unit * 0.004)))


def _forest(
    image: Image.Image,
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    look: _Look,
    horizon: int,
    progress: float,
) -> None:
    width, height = image.size
    unit = min(width, height)
    colours = _layers(look, 4)
    for k, colour in enumerate(colours):
        base = horizon + (height - horizon) * (0.02 + 0.24 * k)
        ridge = _ridge(width, base, unit * 0.05, rng)
        _fill_below(draw, ridge, height, colour)
        tree = _mix(colour, (0, 0, 0), 0.25)
        size = unit * (0.04 + 0.03 * k)
        for _ in range(14 + 6 * k):
            i = rng.randrange(len(ridge))
            x, y = ridge[i][0] + rng.uniform(-width / 96, width / 96), ridge[i][1] + size * 0.3
            h = size * rng.uniform(1.6, 2.6)
            draw.polygon([(x, y - h), (x - size * 0.55, y), (x + size * 0.55, y)], fill=tree)


def _ocean(
    image: Image.Image,
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    look: _Look,
    horizon: int,
    progress: float,
) -> None:
    width, height = image.size
    unit = min(width, height)
    far, near = look.ground
    water = _vertical_gradient((width, height - horizon), far, near, 0, height - horizon)
    image.paste(water, (0, horizon))
    draw = ImageDraw.Draw(image)
    # Wave strokes, closer together towards the horizon (perspective).
    light = _mix(far, (255, 255, 255), 0.35)
    y = float(horizon) + unit * 0.01
    while y < height:
        depth = (y - horizon) / max(height - horizon, 1)
        for _ in range(int(6 + 10 * depth)):
            x, w = rng.uniform(0, width), unit * (0.015 + 0.06 * depth)
            draw.line(
                (x - w, y, x + w, y),
                fill=light,
                width=max(1, round(unit * (0.002 + 0.006 * depth))),
            )
        y += unit * (0.008 + 0.05 * depth)
    # A headland on one side keeps the horizon from being one flat line.
    side = rng.choice((0, 1))
    land = _ridge(round(width * 0.45), horizon + unit * 0.005, unit * 0.05, rng)
    land = [(x if side == 0 else width - x, y) for x, y in land]
    _fill_below(draw, land, horizon + round(unit * 0.01), _mix(near, (0, 0, 0), 0.3))


def _mountains(
    image: Image.Image,
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    look: _Look,
    horizon: int,
    progress: float,
) -> None:
    width, height = image.size
    unit = min(width, height)
    far = look.ground[0]
    rock = _mix(_mix(far, (70, 80, 110), 0.6), look.sky[0], 0.2)
    snow = _mix((245, 248, 252), look.sky[1], 0.25)
    x = -unit * 0.2
    while x < width + unit * 0.2:
        w = unit * rng.uniform(0.25, 0.45)
        h = unit * rng.uniform(0.2, 0.38)
        peak = (x + w / 2, horizon - h)
        draw.polygon([(x, horizon + 2), peak, (x + w, horizon + 2)], fill=rock)
        cap = 0.32
        draw.polygon(
            [
                (peak[0] - w / 2 * cap, peak[1] + h * cap),
                peak,
                (peak[0] + w / 2 * cap, peak[1] + h * cap),
                (peak[0], peak[1] + h * cap * 0.8),
            ],
            fill=snow,
        )
        x += w * rng.uniform(0.45, 0.7)
    colours = _layers(look, 3)
    for k, colour in enumerate(colours):
        base = horizon + (height - horizon) * (0.04 + 0.3 * k)
        ridge = _ridge(width, base, unit * 0.04, rng)
        _fill_below(draw, ridge, height, colour)
        # The shaded lee of each drift, so the slopes read (and show the camera moving).
        shade = _mix(colour, look.sky[0], 0.35)
        draw.line(
            [(x, y + unit * 0.01) for x, y in ridge], fill=shade, width=max(1, round(unit * 0.012))
        )


def _dunes(
    image: Image.Image,
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    look: _Look,
    horizon: int,
    progress: float,
) -> None:
    width, height = image.size
    unit = min(width, height)
    colours = _layers(look, 5)
    for k, colour in enumerate(colours):
        base = horizon + (height - horizon) * (0.01 + 0.2 * k)
        ridge = _ridge(width, base, unit * 0.06, rng)
        _fill_below(draw, ridge, height, colour)
        crest = _mix(colour, (255, 246, 220), 0.35)
        draw.line(ridge, fill=crest, width=max(1, round(unit * 0.005)))


def _city(
    image: Image.Image,
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    look: _Look,
    horizon: int,
    progress: float,
) -> None:
    width, height = image.size
    unit = min(width, height)
    far, near = look.ground
    lit = (255, 214, 140) if look.time != "day" else _mix(look.sky[1], (255, 255, 255), 0.3)
    for row, colour in enumerate((far, near)):
        x = -rng.uniform(0, unit * 0.05)
        while x < width:
            w = unit * rng.uniform(0.07, 0.15)
            h = unit * rng.uniform(0.15, 0.5) * (1.0 if row == 0 else 0.7)
            top = horizon + unit * 0.04 * row - h
            draw.rectangle((x, top, x + w, height), fill=colour)
            win, gap = unit * 0.012, unit * 0.028
            wy = top + gap
            while wy < horizon + unit * 0.04 * row - gap:
                wx = x + gap * 0.6
                while wx < x + w - win - gap * 0.3:
                    if rng.random() < (0.55 if look.time != "day" else 0.35):
                        draw.rectangle((wx, wy, wx + win, wy + win * 1.4), fill=lit)
                    wx += gap
                wy += gap * 1.3
            x += w + unit * rng.uniform(0.005, 0.02)
    street = _mix(near, (0, 0, 0), 0.35)
    draw.rectangle((0, horizon + unit * 0.04, width, height), fill=street)
    lane = _mix(street, (255, 255, 255), 0.35)
    y = horizon + unit * 0.06
    while y < height:
        depth = (y - horizon) / max(height - horizon, 1)
        draw.line(
            (0, y, width, y),
            fill=_mix(street, lane, 0.3 + 0.3 * depth),
            width=max(1, round(unit * 0.003)),
        )
        y += unit * (0.02 + 0.08 * depth)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _tint(colour: RGB, towards: RGB, amount: float, brightness: float) -> RGB:
    mixed = _mix(colour, towards, amount)
    return (
        round(mixed[0] * brightness),
        round(mixed[1] * brightness),
        round(mixed[2] * brightness),
    )


def _save_png(image: Image.Image, dest: Path) -> None:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=6)
    write_atomic(dest, buffer.getvalue())
