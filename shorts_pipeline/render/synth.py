"""Real media made with ffmpeg: demo clips, test clips of every shape, broken files, a music bed.

`make_clip` renders a `ClipRecipe` (size, frame rate, codec, container, pixel format, audio
layout, rotation, pixel aspect, variable frame rate) from lavfi sources, so `shorts demo` can
build an offline clip library (`make_demo_library`) and tests can get any shape a real
library throws at the engine (`TEST_RECIPES`), plus the broken files people really have
(`make_truncated_mp4`, `make_text_as_mp4`, ...). Everything is deterministic, encoded with the
fastest presets, and written atomically (a temp file in the same folder, then a rename).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from pathlib import Path

from shorts_pipeline.render.errors import ProbeError
from shorts_pipeline.render.ffmpeg_run import run_ffmpeg
from shorts_pipeline.render.probe import probe_json

PATTERNS = (
    "pitch",  # a panning football pitch with grass texture and a bouncing ball
    "testsrc2",
    "mandelbrot",  # a slow zoom
    "life",
    "cellauto",
    "gradients",
    "smptehdbars",
    "rgbtestsrc",
    "screen",  # a desktop with windows and a moving cursor, for screen recordings
)
VIDEO_CODECS = ("h264", "hevc", "vp9")
CONTAINERS = ("mp4", "mov", "webm", "mkv")
AUDIO_LAYOUTS = ("none", "mono", "stereo", "5.1")
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)

CLIP_LUFS = -20.0
MUSIC_LUFS = -18.0
# Gains that put the synthesised audio at CLIP_LUFS / MUSIC_LUFS, measured with ebur128.
_TONE_GAIN_DB = {"mono": 7.4, "stereo": 3.9, "5.1": 1.6}
_MUSIC_GAIN_DB = 2.2

_MUXERS = {"mp4": "mp4", "mov": "mov", "webm": "webm", "mkv": "matroska"}
_FINGERPRINT_PREFIX = "shorts-synth:"
# Bump when the pictures or sounds a recipe makes change, so demo libraries re-render.
_SYNTH_VERSION = 1

ProgressFn = Callable[[float], None]


def _sar(text: str) -> Fraction:
    """Parse a sample aspect ratio such as 4:3 or 4/3 (up here: the recipes below use it)."""
    num, _, den = text.replace("/", ":").partition(":")
    return Fraction(int(num), int(den or 1))


@dataclass(frozen=True)
class ClipRecipe:
    """The shape and content of one synthetic clip."""

    width: int  # coded size in pixels
    height: int
    seconds: float
    fps: float = 30.0  # 23.976 and 29.97 are written as exact NTSC rates
    vcodec: str = "h264"  # h264 | hevc | vp9
    container: str = "mp4"  # mp4 | mov | webm | mkv
    pix_fmt: str = "yuv420p"
    audio: str = "stereo"  # none | mono | stereo | 5.1
    audio_rate: int = 48000
    rotation: int = 0  # display rotation metadata: 0, 90, 180 or 270 (mp4/mov only)
    sar: str = "1:1"  # sample aspect ratio, e.g. "4:3" for anamorphic HDV
    vfr: bool = False  # drop frames irregularly, like a screen recorder
    pattern: str = "testsrc2"
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.width < 16 or self.height < 16 or self.width % 2 or self.height % 2:
            problems.append(f"size {self.width}x{self.height} must be even and at least 16")
        if not 0 < self.seconds <= 600:
            problems.append(f"seconds {self.seconds} must be in (0, 600]")
        if not 1 <= self.fps <= 240:
            problems.append(f"fps {self.fps} must be in [1, 240]")
        if self.vcodec not in VIDEO_CODECS:
            problems.append(f"vcodec {self.vcodec!r} is not one of {VIDEO_CODECS}")
        if self.container not in CONTAINERS:
            problems.append(f"container {self.container!r} is not one of {CONTAINERS}")
        if self.container == "webm" and self.vcodec != "vp9":
            problems.append("webm holds vp9 only")
        if self.container == "mov" and self.vcodec == "vp9":
            problems.append("mov cannot hold vp9")
        if self.audio not in AUDIO_LAYOUTS:
            problems.append(f"audio {self.audio!r} is not one of {AUDIO_LAYOUTS}")
        if self.container == "webm" and self.audio != "none" and self.audio_rate not in OPUS_RATES:
            problems.append(f"webm audio is opus, whose rates are {OPUS_RATES}")
        if not 8000 <= self.audio_rate <= 96000:
            problems.append(f"audio_rate {self.audio_rate} must be in [8000, 96000]")
        if self.rotation not in (0, 90, 180, 270):
            problems.append(f"rotation {self.rotation} must be 0, 90, 180 or 270")
        if self.rotation and self.container not in ("mp4", "mov"):
            problems.append("rotation metadata needs an mp4 or mov container")
        if self.pattern not in PATTERNS:
            problems.append(f"pattern {self.pattern!r} is not one of {PATTERNS}")
        try:
            if _sar(self.sar) <= 0:
                raise ValueError
        except (ValueError, ZeroDivisionError):
            problems.append(f"sar {self.sar!r} must look like '4:3'")
        if problems:
            raise ValueError("bad ClipRecipe: " + "; ".join(problems))

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as a player shows the clip: pixels made square, then rotated."""
        w = round(self.width * _sar(self.sar))
        return (self.height, w) if self.rotation in (90, 270) else (w, self.height)

    @property
    def fingerprint(self) -> str:
        """Short hash of every field; written into the file so a re-run can recognise it."""
        return hashlib.sha1(f"{_SYNTH_VERSION}:{self!r}".encode()).hexdigest()[:16]


def make_clip(path: str | Path, recipe: ClipRecipe) -> Path:
    """Render `recipe` into `path` (written atomically) and return the path.

    Above 1080p, HEVC is encoded for one second only (a closed GOP) and that second is
    stream-copied round to the full length: x265 manages 2-10 frames a second at 4K on two
    cores, and what makes a 4K clip realistic downstream (decoding and scaling it) is the
    same either way. Scrolling patterns (pitch, bars) and the ball repeat with the loop, so
    those loops have no visible seam.
    """
    out = Path(path)
    loop = _loop_seconds(recipe)
    encode_seconds = loop or recipe.seconds
    graph = _video_graph(recipe, encode_seconds, period=loop)
    maps = ["-map", "[v]"]
    if recipe.audio != "none" and not loop:
        graph += ";" + _tone(recipe)
        maps += ["-map", "[a]"]
    # Slice threads only pay on big frames; on small ones their wake-ups cost more than
    # the filtering (a 95 s 256x144 clip rendered 2x faster with one filter thread).
    threads = ["-filter_complex_threads", "1"] if recipe.width * recipe.height < 640 * 360 else []
    encode = [
        *("-v", "error", *threads, "-filter_complex", graph, *maps),
        *_video_codec_args(recipe),
        *(_audio_codec_args(recipe) if not loop else []),
        *("-fps_mode", "vfr" if recipe.vfr else "cfr"),
        *("-metadata", f"comment={_FINGERPRINT_PREFIX}{recipe.fingerprint}"),
        *("-f", _MUXERS[recipe.container]),
    ]
    what = f"synthesising {out.name}"
    with _atomic_output(out) as tmp:
        if not loop and not recipe.rotation:
            run_ffmpeg([*encode, str(tmp)], what=what)
            return out
        with _scratch(out) as coded:
            run_ffmpeg([*encode, str(coded)], what=what)
            # A stream-copy remux: loops the encoded second if needed, adds the sound, and
            # writes the rotation (ffmpeg 5.1 writes display-rotation metadata only here).
            remux = ["-v", "error"]
            remux += ["-stream_loop", "-1"] if loop else []
            remux += ["-i", str(coded), "-map", "0:v"]
            if recipe.audio != "none":
                if loop:
                    remux += ["-filter_complex", _tone(recipe)]
                    remux += ["-map", "[a]", *_audio_codec_args(recipe)]
                else:
                    remux += ["-map", "0:a", "-c:a", "copy"]
            remux += ["-c:v", "copy", "-t", f"{recipe.seconds}"]
            if recipe.rotation:
                remux += ["-metadata:s:v:0", f"rotate={recipe.rotation}"]
            remux += ["-f", _MUXERS[recipe.container], str(tmp)]
            run_ffmpeg(remux, what=what)
    return out


# --- broken inputs, for tests --------------------------------------------------------------


def make_truncated_mp4(src: str | Path, dst: str | Path) -> Path:
    """The first half of `src`: a download that stopped halfway.

    `make_clip` writes mp4/mov like a camera does, index (moov) last, so the half has none.
    """
    data = Path(src).read_bytes()
    return _write_bytes(Path(dst), data[: len(data) // 2])


def make_empty_file(path: str | Path) -> Path:
    """A 0-byte file, as a failed download leaves behind."""
    return _write_bytes(Path(path), b"")


def make_text_as_mp4(path: str | Path) -> Path:
    """An HTML error page saved under a video name, as a blocked download produces."""
    page = (
        "<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>\n"
        "<body><h1>Forbidden</h1><p>You do not have permission to access this video.</p>"
        "</body></html>\n"
    )
    return _write_bytes(Path(path), page.encode())


def make_random_bytes(path: str | Path, n: int = 65536, seed: int = 0) -> Path:
    """`n` deterministic random bytes under a video name."""
    return _write_bytes(Path(path), random.Random(seed).randbytes(n))


def make_png_as_mp4(path: str | Path) -> Path:
    """A PNG still image under a video name."""
    out = Path(path)
    with _atomic_output(out) as tmp:
        run_ffmpeg(
            [
                *("-v", "error", "-f", "lavfi", "-i", "testsrc2=s=320x180:r=1"),
                *("-frames:v", "1", "-c:v", "png", "-f", "image2pipe", str(tmp)),
            ],
            what=f"writing {out.name}",
        )
    return out


def make_audio_only(path: str | Path, seconds: float = 3.0) -> Path:
    """An AAC-only file (.m4a or .mp4): sound, no picture."""
    out = Path(path)
    with _atomic_output(out) as tmp:
        run_ffmpeg(
            [
                *("-v", "error", "-filter_complex", _tone_graph("stereo", 48000, seconds, seed=1)),
                *("-map", "[a]", "-c:a", "aac", "-b:a", "128k"),
                *("-f", "ipod" if out.suffix.lower() == ".m4a" else "mp4", str(tmp)),
            ],
            what=f"writing {out.name}",
        )
    return out


# --- music ---------------------------------------------------------------------------------

# One 8-second loop at 120 bpm: C - G - Am - F, a bar (2 s) each; rendered once, then looped.
_MUSIC_LOOP_SECONDS = 8
_MUSIC_EXPR = (
    # 0 chord index, 1 root, 2 third and 3 fifth (an octave up), 4 root two octaves up
    "st(0,floor(mod(t,8)/2));"
    "st(1,if(eq(ld(0),0),130.81,if(eq(ld(0),1),98.00,if(eq(ld(0),2),110.00,87.31))));"
    "st(2,ld(1)*if(eq(ld(0),2),2.3784,2.5198));"
    "st(3,ld(1)*2.9966);"
    "st(4,ld(1)*4);"
    # 5 bar envelope: 30 ms edges, so chord changes do not click
    "st(5,min(1,mod(t,2)*30)*min(1,(2-mod(t,2))*30));"
    # 6 time in beat, 7 time in eighth, 8 arpeggio note, 9 time in half bar (kick)
    "st(6,mod(t,0.5));"
    "st(7,mod(t,0.25));"
    "st(8,mod(floor(t*4),4));"
    "st(9,mod(t,1));"
    # soft pad (sine plus a little third harmonic), swelling on each beat
    "(sin(2*PI*ld(1)*2*t)+0.8*sin(2*PI*ld(2)*t)+0.7*sin(2*PI*ld(3)*t)"
    "+0.1*sin(6*PI*ld(2)*t))*ld(5)*(0.6+0.4*exp(-ld(6)*3))*0.11"
    # plucked bass on every beat
    "+sin(2*PI*ld(1)*t)*exp(-ld(6)*3)*ld(5)*0.3"
    # arpeggio on eighths: root, third, fifth, third, two octaves up
    "+sin(2*PI*t*if(eq(ld(8),0),ld(4),if(eq(ld(8),2),ld(3)*2,ld(2)*2)))"
    "*min(1,ld(7)*300)*exp(-ld(7)*18)*0.1"
    # soft kick on beats 1 and 3: a 135 Hz to 45 Hz pitch drop
    "+sin(2*PI*(45*ld(9)+3*(1-exp(-30*ld(9)))))*exp(-ld(9)*12)*0.45"
)


def make_music_bed(path: str | Path, seconds: float = 60.0) -> Path:
    """A synthesised, royalty-free music bed: stereo 48 kHz AAC (.m4a), about -18 LUFS.

    A four-chord loop with pad, bass, arpeggio, soft kick and a quiet shaker; short fades at
    both ends so it loops cleanly. Deterministic: the same call writes the same music.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, not {seconds}")
    out = Path(path)
    loop_samples = _MUSIC_LOOP_SECONDS * 48000
    fade = min(0.05, seconds / 4)
    graph = (
        f"aevalsrc=exprs='{_MUSIC_EXPR}':s=48000:c=mono:d={_MUSIC_LOOP_SECONDS},"
        f"aloop=loop=-1:size={loop_samples},atrim=duration={seconds},"
        # Haas widening (the right channel 12 ms late) and a little room echo
        "pan=stereo|c0=c0|c1=c0,adelay=0|12,aecho=0.8:0.6:70|110:0.18|0.12[music];"
        f"anoisesrc=c=white:r=48000:a=0.5:seed=7:d={seconds},highpass=f=7000,"
        "tremolo=f=4:d=0.9,volume=0.05,pan=stereo|c0=0.7*c0|c1=c0[shaker];"
        "[music][shaker]amix=inputs=2:normalize=0:duration=first,"
        f"atrim=duration={seconds},afade=t=in:d={fade},"
        f"afade=t=out:st={max(0.0, seconds - fade):.4f}:d={fade},"
        f"volume={_MUSIC_GAIN_DB}dB,asetnsamples=n=1024[a]"
    )
    with _atomic_output(out) as tmp:
        run_ffmpeg(
            [
                *("-v", "error", "-filter_complex", graph, "-map", "[a]"),
                *("-c:a", "aac", "-b:a", "160k", "-ar", "48000", "-ac", "2"),
                *("-f", "ipod" if out.suffix.lower() == ".m4a" else "mp4", str(tmp)),
            ],
            what=f"synthesising the music bed {out.name}",
        )
    return out


# --- the demo library ----------------------------------------------------------------------


@dataclass(frozen=True)
class DemoClip:
    """One clip of the offline demo library: catalog metadata plus how to render it."""

    id: str
    title: str
    views: int
    likes: int
    published: str  # ISO date
    tags: tuple[str, ...]
    recipe: ClipRecipe

    @property
    def file(self) -> str:
        return f"{self.id}.{self.recipe.container}"

    def catalog_entry(self) -> dict[str, object]:
        return {
            "id": self.id,
            "file": self.file,
            "title": self.title,
            "views": self.views,
            "likes": self.likes,
            "published": self.published,
            "tags": list(self.tags),
        }


# Publish dates are fixed relative to this day, so the catalog never changes between runs.
DEMO_REFERENCE_DATE = date(2026, 11, 1)

DEMO_LIBRARY: tuple[DemoClip, ...] = (
    DemoClip(
        id="rabona-goal-30-yards",
        title="Insane rabona goal from 30 yards",
        views=2_480_311,
        likes=131_204,
        published="2026-03-14",
        tags=("football", "goal", "rabona", "soccer", "skills"),
        recipe=ClipRecipe(1920, 1080, 10, 30, pattern="pitch", seed=1),
    ),
    DemoClip(
        id="street-football-skills-vertical",
        title="Street football skills that broke the internet",
        views=5_112_870,
        likes=402_551,
        published="2026-07-02",
        tags=("football", "skills", "street", "freestyle", "shorts"),
        recipe=ClipRecipe(1080, 1920, 8, 30, pattern="gradients", seed=2),
    ),
    DemoClip(
        id="freestyle-juggling-100-touches",
        title="Freestyle juggling: 100 touches without a drop",
        views=890_412,
        likes=61_022,
        published="2025-12-20",
        tags=("football", "freestyle", "juggling", "skills"),
        recipe=ClipRecipe(1080, 1080, 8, 30, pattern="life", seed=3),
    ),
    DemoClip(
        id="classic-free-kick-1998",
        title="Classic free kick from 1998, restored",
        views=1_304_558,
        likes=48_930,
        published="2025-02-11",
        tags=("football", "free kick", "classic", "retro"),
        recipe=ClipRecipe(640, 480, 20, 25, audio_rate=44100, pattern="pitch", seed=4),
    ),
    DemoClip(
        id="dribbling-skills-60fps",
        title="Top dribbling skills in silky 60 fps",
        views=742_019,
        likes=39_875,
        published="2026-05-27",
        tags=("football", "dribbling", "skills", "60fps"),
        recipe=ClipRecipe(1280, 720, 8, 60, pattern="testsrc2", seed=5),
    ),
    DemoClip(
        id="stadium-flyover-4k",
        title="Stadium flyover in 4K before the final",
        views=3_020_447,
        likes=150_312,
        published="2026-06-10",
        tags=("football", "stadium", "4k", "final"),
        recipe=ClipRecipe(
            3840, 2160, 6, 24, vcodec="hevc", pix_fmt="yuv420p10le", pattern="pitch", seed=6
        ),
    ),
    DemoClip(
        id="nutmeg-at-training-phone",
        title="Nutmeg at training, filmed on my phone",
        views=412_993,
        likes=30_117,
        published="2026-09-18",
        tags=("football", "nutmeg", "training", "skills"),
        recipe=ClipRecipe(
            1920, 1080, 9, 29.97, container="mov", rotation=90, pattern="pitch", seed=7
        ),
    ),
    DemoClip(
        id="tactics-breakdown-high-press",
        title="How to beat a high press: tactics breakdown",
        views=268_400,
        likes=17_342,
        published="2026-01-08",
        tags=("football", "tactics", "analysis", "coaching"),
        recipe=ClipRecipe(1280, 720, 16, 30, vfr=True, pattern="screen", seed=8),
    ),
    DemoClip(
        id="cat-chases-laser-pointer",
        title="Cat chases a laser pointer for 12 seconds straight",
        views=9_870_211,
        likes=811_090,
        published="2025-08-30",
        tags=("cats", "funny", "pets", "laser"),
        recipe=ClipRecipe(1440, 1080, 12, 25, sar="4:3", pattern="gradients", seed=9),
    ),
    DemoClip(
        id="pasta-carbonara-quick",
        title="Pasta carbonara, the quick way",
        views=1_550_002,
        likes=97_415,
        published="2026-04-19",
        tags=("cooking", "recipe", "pasta", "food"),
        recipe=ClipRecipe(1280, 720, 14, 30, audio="none", pattern="cellauto", seed=10),
    ),
)

# Every shape the engine must handle, small and short so the test suite stays fast.
TEST_RECIPES: dict[str, ClipRecipe] = {
    "landscape_h264": ClipRecipe(320, 180, 2, 30, pattern="pitch", seed=21),
    "portrait": ClipRecipe(180, 320, 2, 30, pattern="gradients", seed=22),
    "square": ClipRecipe(240, 240, 2, 30, pattern="life", seed=23),
    "four_three_25fps": ClipRecipe(320, 240, 2, 25, audio_rate=44100, pattern="mandelbrot"),
    "hfr_60": ClipRecipe(320, 180, 2, 60, pattern="testsrc2", seed=25),
    "uhd_hevc_10bit": ClipRecipe(
        3840,
        2160,
        2,
        24,
        vcodec="hevc",
        container="mov",
        pix_fmt="yuv420p10le",
        pattern="smptehdbars",
        seed=26,
    ),
    "rotated_phone": ClipRecipe(320, 180, 2, 29.97, rotation=90, pattern="pitch", seed=27),
    "anamorphic": ClipRecipe(360, 270, 2, 23.976, sar="4:3", pattern="rgbtestsrc", seed=28),
    "no_audio": ClipRecipe(320, 180, 2, 30, container="mkv", audio="none", pattern="cellauto"),
    "vfr_screen": ClipRecipe(320, 180, 3, 30, vfr=True, pattern="screen", seed=30),
    "vp9_webm_opus": ClipRecipe(320, 180, 2, 30, vcodec="vp9", container="webm", seed=31),
    "mono_8k": ClipRecipe(320, 180, 2, 30, audio="mono", audio_rate=8000, seed=32),
    "short_0_8s": ClipRecipe(320, 180, 0.8, 30, seed=33),
    "long_95s": ClipRecipe(256, 144, 95, 24, audio="mono", pattern="pitch", seed=34),
}


def make_demo_library(
    directory: str | Path,
    recipes: Sequence[DemoClip] = DEMO_LIBRARY,
    progress: ProgressFn | None = None,
    jobs: int = 2,
) -> Path:
    """Write the demo clips and their `catalog.json` into `directory`; return the catalog path.

    A clip already on disk and rendered from the same recipe (its fingerprint tag matches) is
    kept, so a re-run only probes. `progress` gets the done fraction (0..1), weighted by
    rendering cost. Two clips render at once by default: neither x264 nor x265 keeps two
    cores busy on its own.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    ids = [clip.id for clip in recipes]
    if len(set(ids)) != len(ids):
        raise ValueError(f"demo clip ids must be unique: {ids}")
    todo = [clip for clip in recipes if not _is_current(root / clip.file, clip.recipe)]
    total = sum(_cost(c.recipe) for c in recipes) or 1.0
    done = total - sum(_cost(c.recipe) for c in todo)
    if progress is not None:
        progress(done / total)
    # Largest first, so the 4K clip does not start last and leave a core idle.
    todo.sort(key=lambda c: -_cost(c.recipe))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(make_clip, root / c.file, c.recipe): c for c in todo}
        for future in as_completed(futures):
            future.result()
            done += _cost(futures[future].recipe)
            if progress is not None:
                progress(done / total)
    catalog = root / "catalog.json"
    text = json.dumps([c.catalog_entry() for c in recipes], indent=2, ensure_ascii=False) + "\n"
    if not catalog.exists() or catalog.read_text(encoding="utf-8") != text:
        _write_bytes(catalog, text.encode())
    if progress is not None:
        progress(1.0)
    return catalog


# --- helpers -------------------------------------------------------------------------------


def _is_current(path: Path, recipe: ClipRecipe) -> bool:
    if not path.is_file():
        return False
    try:
        tags = probe_json(path).get("format", {}).get("tags", {})
    except ProbeError:
        return False
    comment = next((v for k, v in tags.items() if k.lower() == "comment"), "")
    return comment == _FINGERPRINT_PREFIX + recipe.fingerprint


def _cost(recipe: ClipRecipe) -> float:
    """Rough rendering cost: pixels per second of video, HEVC weighted by its slower encoder."""
    weight = 6.0 if recipe.vcodec == "hevc" else 1.0
    seconds = _loop_seconds(recipe) or recipe.seconds
    frames = seconds * recipe.fps * (0.5 if recipe.vfr else 1.0)
    return weight * recipe.width * recipe.height * frames


def _tone(recipe: ClipRecipe) -> str:
    frame = 960 if recipe.container == "webm" else 1024  # Opus or AAC
    return _tone_graph(recipe.audio, recipe.audio_rate, recipe.seconds, recipe.seed, frame)


def _loop_seconds(recipe: ClipRecipe) -> float | None:
    """Length of the encoded loop for clips too slow to encode whole (HEVC above 1080p)."""
    if recipe.vcodec != "hevc" or recipe.width * recipe.height <= 1920 * 1088 or recipe.vfr:
        return None
    frames = max(1, round(recipe.fps))  # a whole number of frames: about one second
    loop = frames / recipe.fps
    return loop if recipe.seconds > loop else None


def _video_graph(r: ClipRecipe, seconds: float, period: float | None = None) -> str:
    """lavfi sources → upright picture in display shape → coded shape (squeezed, turned).

    With `period`, scrolling and the ball repeat exactly every `period` seconds.
    """
    rate = _rate_text(r.fps)
    disp_w, disp_h = r.display_size
    # The picture before the rotation a player applies: coded width and height, upright.
    pre_w, pre_h = (r.height, r.width) if r.rotation in (90, 270) else (r.width, r.height)
    # Costly sources draw at a quarter of the size and are scaled up; cheap ones draw at
    # full size up to 1080p.
    costly = r.pattern in {"pitch", "mandelbrot", "gradients", "cellauto"}
    divisor = 4 if costly else max(1, math.ceil(max(disp_w, disp_h) / 1920))
    cw, ch = _even(disp_w / divisor), _even(disp_h / divisor)
    # Scroll speed in canvas widths per frame: one width per loop when looping.
    scroll = 1 / round(period * r.fps) if period else None
    source, flags, ball = _pattern(r.pattern, cw, ch, rate, r.seed, scroll)
    chain = f"{source},trim=duration={seconds},setpts=PTS-STARTPTS"
    if ball:
        b = _even(max(6, min(cw, ch) / 10))
        radius = b / 2 - 0.5
        phase = (r.seed * 1.37) % (2 * math.pi)
        wx, wy = (2 * math.pi / period, 2 * math.pi / period) if period else (0.9, 1.9)
        chain += (
            "[bg];"
            # Drawn once and repeated: geq per frame costs little CPU but, slice-threaded,
            # a lot of thread wake-ups on a small frame.
            f"color=c=white:s={b}x{b}:r={rate},trim=end_frame=1,format=yuva420p,"
            f"geq=lum=235:cb=128:cr=128:a='255*lte(hypot(X-{radius},Y-{radius}),{radius})',"
            "loop=loop=-1:size=1[ball];"
            "[bg][ball]overlay=shortest=1"
            f":x='(W-w)*(0.5+0.45*sin({wx:.5f}*t+{phase:.3f}))'"
            f":y='(H-h)*(0.1+0.85*(1-abs(sin({wy:.5f}*t+{phase:.3f}))))'"
        )
    chain += f",scale={pre_w}:{pre_h}:flags={flags}"
    # ffmpeg 5.1 turns the tag rotate=N into a display matrix of N degrees counterclockwise
    # (ffprobe: "rotation": N), which players apply; so the coded picture is the upright
    # one turned N degrees clockwise.
    chain += {0: "", 90: ",transpose=clock", 180: ",hflip,vflip", 270: ",transpose=cclock"}[
        r.rotation
    ]
    sar = _sar(r.sar)
    chain += f",setsar={sar.numerator}/{sar.denominator},format={r.pix_fmt}"
    if r.vfr:
        # Keep an irregular ~half of the frames, like a recorder that only writes changes;
        # always the first and the last, so the duration stays what the recipe says.
        last = seconds - 1.5 / r.fps
        chain += f",select='eq(n,0)+gte(t,{last:.4f})+lt(mod(n*n*7+n*3+{r.seed},17),8)'"
    return chain + "[v]"


def _pattern(
    name: str, w: int, h: int, rate: str, seed: int, scroll: float | None
) -> tuple[str, str, bool]:
    """(source chain at w x h, scale flags for enlarging it, whether to add a moving ball)."""
    rng = random.Random(seed)
    if name == "pitch":
        light, dark = 118 + rng.randrange(12), 100 + rng.randrange(8)
        line = max(1, w // 160)
        pan = scroll or 0.002 + rng.random() * 0.002
        return (
            # One still frame (stripes, lines, a fixed grain), repeated and panned: grain
            # that changes every frame would make the encoder the bottleneck of the demo.
            f"nullsrc=s=16x2:r={rate},trim=end_frame=1,"
            f"geq=lum='if(mod(X,2),{light},{dark})':cb={96 + rng.randrange(8)}:cr=110,"
            f"scale={w}:{h}:flags=neighbor,"
            f"drawbox=x=iw/2-{line}:y=0:w={2 * line}:h=ih:color=white@0.8:t=fill,"
            f"drawbox=x=0:y=ih/12:w=iw:h={line}:color=white@0.8:t=fill,"
            f"noise=alls=12:allf=u,loop=loop=-1:size=1,scroll=h={pan:.5f}",
            "bilinear",
            True,
        )
    if name == "testsrc2":
        return f"testsrc2=s={w}x{h}:r={rate}", "bilinear", False
    if name == "mandelbrot":
        outer = rng.choice(["normalized_iteration_count", "iteration_count"])
        return (
            f"mandelbrot=s={w}x{h}:r={rate}:maxiter=160:outer={outer}"
            f":start_scale={2.0 + rng.random():.3f}:end_scale=0.02:end_pts=40",
            "bilinear",
            False,
        )
    if name == "life":
        colours = rng.choice([("#ffcc33", "#101040", "#803050"), ("#66ff99", "#0b1a12", "#2d6a4f")])
        return (
            f"life=s={max(16, w // 8)}x{max(16, h // 8)}:r={rate}:mold=10:ratio=0.3:seed={seed}"
            f":life_color={colours[0]}:death_color={colours[1]}:mold_color={colours[2]}",
            "neighbor",
            False,
        )
    if name == "cellauto":
        rule = rng.choice([30, 90, 110, 150])
        u, v = 128 + rng.randrange(-40, 40), 128 + rng.randrange(-40, 40)
        return (
            f"cellauto=s={w}x{h}:r={rate}:rule={rule}:seed={seed}:ratio=0.5,format=yuv420p,"
            f"lutyuv=y='val*0.6+50':u={u}:v={v}",
            "neighbor",
            False,
        )
    if name == "gradients":
        kind = rng.choice(["linear", "radial", "circular"])
        return (
            f"gradients=s={w}x{h}:r={rate}:n=3:seed={seed}:speed=0.02:type={kind}",
            "bilinear",
            True,
        )
    if name == "smptehdbars":
        return f"smptehdbars=s={w}x{h}:r={rate},scroll=h={scroll or 0.004:.5f}", "bilinear", True
    if name == "rgbtestsrc":
        return f"rgbtestsrc=s={w}x{h}:r={rate},scroll=v={scroll or 0.005:.5f}", "bilinear", True
    if name == "screen":
        boxes = []
        for _ in range(3):
            bx, by = rng.randrange(w // 2), rng.randrange(h // 2)
            bw, bh = w // 3 + rng.randrange(w // 4), h // 3 + rng.randrange(h // 4)
            bar = max(2, h // 30)
            boxes.append(f"drawbox=x={bx}:y={by}:w={bw}:h={bh}:color=#e8e8ee:t=fill")
            boxes.append(f"drawbox=x={bx}:y={by}:w={bw}:h={bar}:color=#3a6ea5:t=fill")
        desktop = f"color=c=#1f2430:s={w}x{h}:r={rate},trim=end_frame=1," + ",".join(boxes)
        return desktop + ",loop=loop=-1:size=1", "bilinear", True
    raise ValueError(f"unknown pattern {name!r}")


def _tone_graph(layout: str, rate: int, seconds: float, seed: int, frame: int = 1024) -> str:
    """A soft major chord with tremolo, pitched by `seed`, at about CLIP_LUFS; labelled [a].

    `frame` is the encoder's frame size (AAC 1024, Opus 960): encoders without variable
    frame sizes need exact frames, and ffmpeg 5.1 does not size them for -filter_complex.
    """
    semitone = (seed * 7) % 19
    f0 = 220.0 * 2 ** (semitone / 12)
    freqs = [f0, f0 * 2 ** (4 / 12), f0 * 2 ** (7 / 12)]
    pans = {
        "mono": "mono|c0=0.5*c0+0.3*c1+0.2*c2",
        "stereo": "stereo|c0=0.55*c0+0.35*c1+0.1*c2|c1=0.55*c0+0.1*c1+0.35*c2",
        "5.1": "5.1|c0=0.5*c0+0.4*c1|c1=0.5*c0+0.4*c2|c2=0.6*c0|c3=0.3*c0"
        "|c4=0.3*c1+0.1*c0|c5=0.3*c2+0.1*c0",
    }
    fade = min(0.03, seconds / 4)
    sources = ";".join(f"sine=f={f:.2f}:r={rate}:d={seconds}[t{i}]" for i, f in enumerate(freqs))
    return (
        f"{sources};[t0][t1][t2]amerge=inputs=3,pan={pans[layout]},"
        f"tremolo=f={2 + seed % 3}:d=0.3,afade=t=in:d={fade},"
        f"afade=t=out:st={max(0.0, seconds - fade):.4f}:d={fade},"
        f"volume={_TONE_GAIN_DB[layout]}dB,asetnsamples=n={frame}[a]"
    )


def _video_codec_args(r: ClipRecipe) -> list[str]:
    gop = ["-g", str(max(1, round(r.fps * 2)))]
    if r.vcodec == "h264":
        return ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "26", *gop]
    if r.vcodec == "hevc":
        # ultrafast plus no lookahead, b-frames, SAO or deblocking: x265 at 4K is the slowest
        # thing we synthesise, and realism here is about the stream's shape, not its quality.
        params = (
            "log-level=error:ctu=64:min-cu-size=32:rc-lookahead=0:bframes=0:aq-mode=0"
            ":no-cutree=1:sao=0:no-deblock=1:frame-threads=2"
        )
        tag = ["-tag:v", "hvc1"] if r.container in ("mp4", "mov") else []
        return [
            *("-c:v", "libx265", "-preset", "ultrafast", "-crf", "28", "-x265-params", params),
            *tag,
            *gop,
        ]
    return [
        *("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1"),
        *("-crf", "36", "-b:v", "0", *gop),
    ]


def _audio_codec_args(r: ClipRecipe) -> list[str]:
    if r.audio == "none":
        return []
    channels = {"mono": 1, "stereo": 2, "5.1": 6}[r.audio]
    if r.container == "webm":
        return ["-c:a", "libopus", "-b:a", f"{48 * channels}k"]
    per_channel = 64 if r.audio_rate >= 32000 else 24
    return ["-c:a", "aac", "-b:a", f"{per_channel * channels}k"]


def _rate_text(fps: float) -> str:
    """An exact rational frame rate; 23.976, 29.97 and 59.94 become the NTSC x/1001 rates."""
    for base in (24, 30, 48, 60, 120):
        if abs(fps - base * 1000 / 1001) < 0.002:
            return f"{base * 1000}/1001"
    frac = Fraction(str(fps)).limit_denominator(1000)
    return f"{frac.numerator}/{frac.denominator}"


def _even(value: float) -> int:
    return max(16, round(value / 2) * 2)


@contextmanager
def _atomic_output(path: Path) -> Iterator[Path]:
    """A temp path beside `path`, renamed onto it only when the block finishes."""
    with _scratch(path) as tmp:
        yield tmp
        os.replace(tmp, path)


@contextmanager
def _scratch(path: Path) -> Iterator[Path]:
    """A temp path in `path`'s folder (same file system, so a rename is atomic); always removed.

    Not created here (ffmpeg creates it), so the file gets the usual umask permissions rather
    than mkstemp's 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _write_bytes(path: Path, data: bytes) -> Path:
    with _atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return path
