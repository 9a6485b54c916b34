"""Video encoders: libx264 everywhere, NVIDIA's NVENC when a GPU offers it.

libx264 is the default and the reference: the benchmarks, the quality checks and every
number in the README are measured with it. `SHORTS_VIDEO_ENCODER` chooses another:

- `libx264` (default): software H.264, `veryfast`, CRF 23.
- `h264_nvenc`: NVENC H.264 (preset p4, constant quality `cq` 23, High profile). When this
  ffmpeg or this machine cannot open an NVENC session (no NVIDIA driver, no GPU, or a
  consumer card already running its limit of concurrent sessions), the render falls back to
  libx264 and says so in its result.
- `auto`: NVENC when a test encode succeeds on this machine, libx264 otherwise.

Both encoders produce the same container, profile, pixel format, GOP and colour tags, so the
quality checks judge either output the same way.
"""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass, replace
from typing import Literal

from shorts_pipeline.render.ffmpeg_run import ffmpeg_binary

VideoCodec = Literal["libx264", "h264_nvenc"]
ENCODER_ENV = "SHORTS_VIDEO_ENCODER"
ENCODER_CHOICES = ("libx264", "h264_nvenc", "auto")
# What an NVENC failure looks like in ffmpeg's log: the library, the device or a session.
NVENC_FAILURE_MARKERS = ("nvenc", "libcuda", "cuda", "openencodesessionex", "no capable devices")


@dataclass(frozen=True)
class EncoderSettings:
    video_codec: VideoCodec = "libx264"
    preset: str = "veryfast"  # libx264's preset
    crf: int = 23  # libx264's CRF; NVENC's constant-quality `cq` takes the same value
    audio_bitrate: str = "160k"
    scale_flags: str = "bicubic"
    gop_seconds: float = 2.0
    nvenc_preset: str = "p4"  # p1 (fastest) … p7 (best); p4 is NVENC's balanced default

    def video_args(self, fps: int) -> list[str]:
        """ffmpeg output arguments for the video stream (codec, rate control, profile, GOP)."""
        if self.video_codec == "h264_nvenc":
            codec = [
                "-c:v",
                "h264_nvenc",
                "-preset",
                self.nvenc_preset,
                "-tune",
                "hq",
                "-rc",
                "vbr",
                "-cq",
                str(self.crf),
                "-b:v",
                "0",
                "-spatial-aq",
                "1",
            ]
        else:
            codec = ["-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf)]
        return [
            *codec,
            "-profile:v",
            "high",
            "-pix_fmt",
            "yuv420p",
            "-r",
            str(fps),
            "-g",
            str(int(fps * self.gop_seconds)),
        ]

    def software(self) -> EncoderSettings:
        """The same settings on libx264 (the fallback)."""
        return replace(self, video_codec="libx264")


@functools.cache
def nvenc_available() -> bool:
    """Whether this ffmpeg can open an NVENC H.264 session here: a 0.1 s test encode (about
    50 ms without a GPU), run once per process. Having `h264_nvenc` compiled in is not enough:
    Debian's ffmpeg lists it on machines with no NVIDIA driver."""
    try:
        proc = subprocess.run(
            [
                ffmpeg_binary(),
                "-hide_banner",
                "-nostdin",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "color=s=256x256:r=30:d=0.1",
                *EncoderSettings(video_codec="h264_nvenc").video_args(30),
                "-f",
                "null",
                "-",
            ],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def encoder_from_env(environ: dict[str, str] | None = None) -> EncoderSettings:
    """The encoder `SHORTS_VIDEO_ENCODER` asks for, resolved on this machine."""
    env = os.environ if environ is None else environ
    choice = (env.get(ENCODER_ENV) or "libx264").strip().lower()
    if choice not in ENCODER_CHOICES:
        raise ValueError(
            f"{ENCODER_ENV}={choice!r} is not an encoder: use one of {', '.join(ENCODER_CHOICES)}"
        )
    if choice == "libx264" or (choice == "auto" and not nvenc_available()):
        return EncoderSettings()
    # h264_nvenc asked for by name is kept even when the test encode failed: the render tries
    # it and falls back with a reason, so the failure is reported where the video is made.
    return EncoderSettings(video_codec="h264_nvenc")


def is_nvenc_failure(log: str) -> bool:
    """Whether an ffmpeg failure log says the NVENC encoder (not the input) was the problem."""
    text = log.lower()
    return any(marker in text for marker in NVENC_FAILURE_MARKERS)
