"""Loudness measurement (EBU R128) and the two-pass normalisation built on it.

The first pass measures with `ebur128` (cheap: no 192 kHz resampling, unlike loudnorm's
own analysis); the second applies the gain that brings the measured loudness to the target.
When that gain would push peaks over the ceiling (speech is peaky: espeak-ng's voice sits
~14 dB above its loudness), a look-ahead limiter shaves the peaks instead. loudnorm's own
linear mode silently falls back to its dynamic mode in that case, which misses the target
by a LU or more on short videos.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from shorts_pipeline.render.ffmpeg_run import run_ffmpeg

TARGET_LUFS = -14.0
TARGET_TRUE_PEAK = -1.0
# loudnorm's true-peak limiter can overshoot by a few tenths; aim below the limit.
LOUDNORM_TP = -1.5
LOUDNORM_LRA = 11.0
# ebur128 as an analysis filter: per-frame lines only at verbose level, summary at info.
EBUR128_FILTER = "ebur128=peak=true:framelog=verbose"


@dataclass(frozen=True)
class Loudness:
    integrated_lufs: float
    true_peak_dbtp: float
    lra: float
    threshold_lufs: float = float("nan")

    @property
    def silent(self) -> bool:
        return not math.isfinite(self.true_peak_dbtp) or self.integrated_lufs <= -69.0


def measure_loudness(path: str | Path) -> Loudness:
    """Integrated loudness, true peak and loudness range of a file's first audio stream."""
    log = run_ffmpeg(
        ["-i", str(path), "-map", "0:a:0", "-af", EBUR128_FILTER, "-f", "null", "-"],
        what=f"loudness measurement of {path}",
    )
    return parse_ebur128_summary(log)


def parse_ebur128_summary(log: str) -> Loudness:
    summary = log[log.rfind("Summary:") :]
    integrated = summary[summary.find("Integrated loudness:") :]
    return Loudness(
        integrated_lufs=_number(r"I:\s+(-?[\d.]+|-inf) LUFS", integrated),
        true_peak_dbtp=_number(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary),
        lra=_number(r"LRA:\s+(-?[\d.]+) LU", summary),
        threshold_lufs=_number(r"Threshold:\s+(-?[\d.]+|-inf) LUFS", integrated),
    )


# Sample-peak ceiling of the limiter: intersample peaks add up to ~0.5 dB, so −2 dBFS sample
# peaks keep true peaks under −1 dBTP.
LIMITER_CEILING_DB = -2.0


def loudnorm_filter(measured: Loudness, target: float = TARGET_LUFS) -> str:
    """The second pass: a plain gain to `target`, with a limiter when peaks would clip."""
    if measured.silent:
        return "anull"  # nothing to normalise
    gain = target - measured.integrated_lufs
    if measured.true_peak_dbtp + gain <= LOUDNORM_TP:
        return f"volume={gain:.2f}dB"
    ceiling = 10 ** (LIMITER_CEILING_DB / 20)
    return f"volume={gain:.2f}dB,alimiter=limit={ceiling:.4f}:attack=5:release=60:level=0:latency=1"


def prelimit(mix: Path, measured: Loudness, target: float = TARGET_LUFS) -> tuple[Path, Loudness]:
    """When the gain to `target` needs the limiter, limit `mix` once and measure it again.

    Limiting takes some loudness away with the peaks (0.5–1 LU on speech); the render pass
    then applies only the small gain that is left, so the result lands on the target. Audio
    only: a minute of audio takes a fraction of a second. Returns the file to use and its
    loudness (`mix` unchanged when no limiting is needed)."""
    if (
        measured.silent
        or measured.true_peak_dbtp + target - measured.integrated_lufs <= LOUDNORM_TP
    ):
        return mix, measured
    limited = mix.with_name(mix.stem + ".limited.wav")
    log = run_ffmpeg(
        [
            "-i",
            str(mix),
            "-af",
            f"{loudnorm_filter(measured, target)},{EBUR128_FILTER}",
            "-c:a",
            "pcm_f32le",
            "-f",
            "wav",
            str(limited),
        ],
        what="loudness limiting",
    )
    return limited, parse_ebur128_summary(log)


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    if not match:
        return float("nan")
    value = match.group(1)
    return float("-inf") if value == "-inf" else float(value)
