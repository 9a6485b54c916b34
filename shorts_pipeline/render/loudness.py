"""Loudness measurement (EBU R128) and the numbers a two-pass normalisation needs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from shorts_pipeline.render.ffmpeg_run import run_ffmpeg

TARGET_LUFS = -14.0
TARGET_TRUE_PEAK = -1.0
# loudnorm's own true-peak limiter can overshoot by a few tenths; aim below the limit.
LOUDNORM_TP = -1.5
LOUDNORM_LRA = 11.0


@dataclass(frozen=True)
class Loudness:
    integrated_lufs: float
    true_peak_dbtp: float
    lra: float


@dataclass(frozen=True)
class LoudnormMeasurement:
    """What loudnorm's first pass reports; fed back to its second pass for linear gain."""

    input_i: float
    input_tp: float
    input_lra: float
    input_thresh: float
    target_offset: float

    def filter(self, target: float = TARGET_LUFS) -> str:
        if self.input_i == float("-inf"):
            # Pure silence: nothing to normalise, and loudnorm cannot use -inf.
            return "anull"
        return (
            f"loudnorm=I={target}:TP={LOUDNORM_TP}:LRA={LOUDNORM_LRA}"
            f":measured_I={self.input_i}:measured_TP={self.input_tp}"
            f":measured_LRA={self.input_lra}:measured_thresh={self.input_thresh}"
            f":offset={self.target_offset}:linear=true:print_format=summary"
        )


def measure_loudness(path: str | Path) -> Loudness:
    """Integrated loudness, true peak and loudness range of a file's first audio stream."""
    log = run_ffmpeg(
        ["-i", str(path), "-map", "0:a:0", "-af", "ebur128=peak=true", "-f", "null", "-"],
        what=f"loudness measurement of {path}",
    )
    summary = log[log.rfind("Summary:") :]
    i = _number(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    lra = _number(r"LRA:\s+(-?[\d.]+) LU", summary)
    peak = _number(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    return Loudness(integrated_lufs=i, true_peak_dbtp=peak, lra=lra)


def loudnorm_first_pass_filter(target: float = TARGET_LUFS) -> str:
    return f"loudnorm=I={target}:TP={LOUDNORM_TP}:LRA={LOUDNORM_LRA}:print_format=json"


def parse_loudnorm_json(log: str) -> LoudnormMeasurement:
    """The JSON block loudnorm prints at the end of its first pass."""
    start = log.rfind("{")
    end = log.rfind("}")
    if start < 0 or end < start:
        raise ValueError("loudnorm printed no measurement")
    data = json.loads(log[start : end + 1])

    def num(key: str) -> float:
        value = str(data[key]).strip()
        return float("-inf") if value in {"-inf", "inf"} else float(value)

    return LoudnormMeasurement(
        input_i=num("input_i"),
        input_tp=num("input_tp"),
        input_lra=num("input_lra"),
        input_thresh=num("input_thresh"),
        target_offset=num("target_offset"),
    )


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    if not match:
        return float("nan")
    value = match.group(1)
    return float("-inf") if value == "-inf" else float(value)
