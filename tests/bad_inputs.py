"""The bad-input corpus: every broken and every odd input a creator's library really holds,
generated at test time with ffmpeg and Pillow (no committed binaries), plus hostile titles.

`make_bad_input_library(folder)` writes the whole set into `folder` with a `catalog.json`, so
the folder works as a clip library (`LocalLibrarySource(directory=folder)`). Every catalog
entry carries what the pipeline must do with its file under `expect`:

- `{"accepted": true, ...}` — a usable clip of an odd shape; the probe must see its real
  shape (display size, rotation, pixel aspect, codec, audio);
- `{"accepted": false, "reason": [words]}` — a file that cannot be used; it must be refused
  with a reason holding those words, and nothing else in the project may suffer.

Files stay small (320x180, about 2 s) except where the input is about size or length: the 4K
HEVC clip (2 s) and the 95 s clip (256x144).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shorts_pipeline.render.probe import ffmpeg_binary
from shorts_pipeline.render.synth import (
    ClipRecipe,
    make_audio_only,
    make_clip,
    make_empty_file,
    make_png_as_mp4,
    make_random_bytes,
    make_text_as_mp4,
    make_truncated_mp4,
)

CATALOG = "catalog.json"

# Titles a creator (or a scraped clip) may well have; each must give a safe key, a drawn
# card and, through the whole pipeline, a video.
HOSTILE_TITLES: dict[str, str] = {
    "hangul": "축구 드리블 묘기 베스트 다섯",
    "arabic": "أفضل مهارات كرة القدم لهذا العام",
    "emoji_only": "⚽🔥🏆",
    "dot_dot_slash": "../../../etc/passwd ../ ..\\..\\windows",
    "shell": '$(rm -rf ~); echo "x" | tee',
    "format_strings": "{0} %s %(x)s {__class__}",
    "html": "<script>alert(1)</script>",
    "filter_syntax": "Skills: 'best' [0:v], a;b \\ c=d",
    "long_300": ("Incredible football skill compilation " * 8)[:300],
}


@dataclass(frozen=True)
class BadInput:
    """One file of the corpus: how to make it and what the pipeline must do with it."""

    file: str
    title: str
    make: Callable[[Path], Path]
    reason: tuple[str, ...] = ()  # words of the refusal; empty for a usable clip
    shape: dict[str, Any] = field(default_factory=dict)  # what the probe must report
    views: int = 1000

    @property
    def accepted(self) -> bool:
        return not self.reason

    @property
    def id(self) -> str:
        return Path(self.file).stem

    def catalog_entry(self) -> dict[str, Any]:
        expect: dict[str, Any] = (
            {"accepted": True, "shape": self.shape}
            if self.accepted
            else {"accepted": False, "reason": list(self.reason)}
        )
        return {
            "id": self.id,
            "file": self.file,
            "title": self.title,
            "tags": ["football", "skills"],
            "views": self.views,
            "likes": self.views // 20,
            "published": "2026-05-01",
            "expect": expect,
        }


def _recipe(recipe: ClipRecipe) -> Callable[[Path], Path]:
    return lambda path: make_clip(path, recipe)


def _truncated(recipe: ClipRecipe) -> Callable[[Path], Path]:
    """The first half of a clip whose index (moov) comes last: a download that stopped."""

    def make(path: Path) -> Path:
        whole = path.with_name(f".whole-{path.name}")
        make_clip(whole, recipe)
        make_truncated_mp4(whole, path)
        whole.unlink()
        return path

    return make


def _truncated_faststart(recipe: ClipRecipe) -> Callable[[Path], Path]:
    """60 % of a faststart clip: the index up front still promises the whole length, so
    only decoding the end shows that it is cut off."""

    def make(path: Path) -> Path:
        whole = path.with_name(f".whole-{path.name}")
        moved = path.with_name(f".faststart-{path.name}")
        make_clip(whole, recipe)
        remux = ["-c", "copy", "-movflags", "+faststart", str(moved)]
        subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-i", str(whole), *remux], check=True)
        data = moved.read_bytes()
        whole.unlink()
        moved.unlink()
        path.write_bytes(data[: int(len(data) * 0.6)])
        return path

    return make


_SMALL = ClipRecipe(320, 180, 2.0, 30, pattern="pitch", seed=41)

BROKEN: tuple[BadInput, ...] = (
    BadInput(
        "truncated.mp4",
        "Truncated download",
        _truncated(_SMALL),
        reason=("incomplete file", "moov atom", "download or copy it again"),
    ),
    BadInput(
        "truncated_faststart.mp4",
        "Truncated faststart download",
        _truncated_faststart(ClipRecipe(320, 180, 3.0, 30, pattern="testsrc2", seed=42)),
        reason=("truncated", "end of the video cannot be decoded", "download it again"),
    ),
    BadInput(
        "empty.mp4",
        "Empty file",
        make_empty_file,
        reason=("file is empty", "0 bytes"),
    ),
    BadInput(
        "html_page.mp4",
        "Text saved as a video",
        make_text_as_mp4,
        reason=("not a readable media file", "HTML page", "not a video"),
    ),
    BadInput(
        "random_bytes.mp4",
        "Random bytes",
        lambda path: make_random_bytes(path, n=48_000, seed=7),
        reason=("not a readable media file", "random or corrupt data"),
    ),
    BadInput(
        "picture.mp4",
        "A PNG named .mp4",
        make_png_as_mp4,
        reason=("an image", "not a video clip"),
    ),
    BadInput(
        "audio_only.mp4",
        "Sound without picture",
        lambda path: make_audio_only(path, seconds=2.0),
        reason=("audio-only", "no video stream"),
    ),
    BadInput(
        "short_0_8s.mp4",
        "Too short",
        _recipe(ClipRecipe(320, 180, 0.8, 30, seed=43)),
        reason=("too short", "clips need at least 1.0 s"),
    ),
)

ODD: tuple[BadInput, ...] = (
    BadInput(
        "rotated_phone.mp4",
        "Phone clip: football skills 'filmed' upright",
        _recipe(ClipRecipe(320, 180, 2.0, 29.97, rotation=90, pattern="pitch", seed=44)),
        shape={"display": [180, 320], "rotation": 90, "codec": "h264", "audio": "aac"},
        views=500_000,
    ),
    BadInput(
        "vfr_screen.mp4",
        "Screen recording [VFR]; skills: {0} %s \\N",
        _recipe(ClipRecipe(320, 180, 3.0, 30, vfr=True, pattern="screen", seed=45)),
        shape={"display": [320, 180], "vfr": True, "codec": "h264"},
        views=20_000,
    ),
    BadInput(
        "anamorphic.mp4",
        "Anamorphic <b>HDV</b> skills",
        _recipe(ClipRecipe(360, 270, 2.0, 25, sar="4:3", pattern="rgbtestsrc", seed=46)),
        shape={"display": [480, 270], "sar": "4/3", "codec": "h264"},
        views=10_000,
    ),
    BadInput(
        "vp9_opus.webm",
        "WebM skills 축구 ⚽",
        _recipe(ClipRecipe(320, 180, 2.0, 30, vcodec="vp9", container="webm", seed=47)),
        shape={"display": [320, 180], "codec": "vp9", "audio": "opus"},
        views=800_000,
    ),
    BadInput(
        "mono_8k.mp4",
        "8 kHz mono phone call skills",
        _recipe(ClipRecipe(320, 180, 2.0, 30, audio="mono", audio_rate=8000, seed=48)),
        shape={"display": [320, 180], "audio": "aac", "audio_rate": 8000, "channels": 1},
        views=700_000,
    ),
    BadInput(
        "uhd_hevc_10bit_51.mp4",
        "4K HEVC 10-bit 5.1 skills",
        _recipe(
            ClipRecipe(
                3840,
                2160,
                2.0,
                24,
                vcodec="hevc",
                pix_fmt="yuv420p10le",
                audio="5.1",
                pattern="smptehdbars",
                seed=49,
            )
        ),
        shape={
            "display": [3840, 2160],
            "codec": "hevc",
            "pix_fmt": "yuv420p10le",
            "audio": "aac",
            "channels": 6,
        },
        views=900_000,
    ),
    BadInput(
        "long_95s.mp4",
        "95 seconds of football skills",
        _recipe(ClipRecipe(256, 144, 95.0, 24, audio="mono", pattern="pitch", seed=50)),
        shape={"display": [256, 144], "duration": 95.0},
        views=600_000,
    ),
)

CORPUS: tuple[BadInput, ...] = BROKEN + ODD


def make_bad_input_library(
    folder: str | Path, names: Iterable[str] | None = None, workers: int = 2
) -> Path:
    """Writes the corpus (or the files in `names`) into `folder` with its catalog.json.

    Files are made two at a time: most encoders here use one core. Returns `folder`.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    wanted = set(names) if names is not None else None
    items = [item for item in CORPUS if wanted is None or item.file in wanted]
    # The slowest first, so the pool ends together.
    items.sort(key=lambda item: item.file not in ("long_95s.mp4", "uhd_hevc_10bit_51.mp4"))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(item.make, root / item.file) for item in items]:
            future.result()
    entries = [item.catalog_entry() for item in CORPUS if item in items]
    (root / CATALOG).write_text(json.dumps(entries, indent=2, ensure_ascii=False), "utf-8")
    return root


def catalog_of(folder: str | Path) -> list[dict[str, Any]]:
    """The catalog entries of a corpus folder."""
    data: list[dict[str, Any]] = json.loads((Path(folder) / CATALOG).read_text("utf-8"))
    return data
