"""Loudness measurement (EBU R128) and the two-pass normalisation built on it.

The first pass measures with `ebur128` (cheap: no 192 kHz resampling, unlike loudnorm's
own analysis); the second applies `loudnorm` in linear mode with those numbers, which is a
plain gain unless the true-peak ceiling forces its limiter.
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


def loudnorm_filter(measured: Loudness, target: float = TARGET_LUFS) -> str:
    """The second pass: linear gain to `target`, limited to the true-peak ceiling."""
    if measured.silent:
        # Nothing to normalise (and loudnorm cannot take -inf).
        return "anull"
    return (
        f"loudnorm=I={target}:TP={LOUDNORM_TP}:LRA={max(LOUDNORM_LRA, measured.lra + 1):.1f}"
        f":measured_I={measured.integrated_lufs}:measured_TP={measured.true_peak_dbtp}"
        f":measured_LRA={measured.lra}:measured_thresh={measured.threshold_lufs}"
        ":linear=true:print_format=none"
    )


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    if not match:
        return float("nan")
    value = match.group(1)
    return float("-inf") if value == "-inf" else float(value)
