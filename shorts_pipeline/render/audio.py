"""Audio files the renderer makes besides videos: the joined narration track."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from shorts_pipeline.render.ffmpeg_run import run_ffmpeg


def join_speech(parts: Sequence[tuple[str | None, float, float]], out_path: str | Path) -> str:
    """One track from `(file or None, seconds, gap after)` parts: each file (or that many
    seconds of silence) followed by its gap, encoded as AAC in an .m4a. Atomic."""
    if not parts:
        raise ValueError("nothing to join")
    out = Path(out_path)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial.m4a")
    inputs: list[str] = []
    chains, labels = [], []
    fmt = "aresample=48000,aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=mono"
    for k, (path, seconds, gap) in enumerate(parts):
        total = f"{seconds + gap:.3f}"
        if path is None:
            chains.append(f"anullsrc=r=48000:cl=mono,atrim=duration={total},{fmt}[p{k}]")
        else:
            n = len(inputs) // 2
            inputs += ["-i", str(path)]
            chains.append(f"[{n}:a]{fmt},apad,atrim=duration={total}[p{k}]")
        labels.append(f"[p{k}]")
    chains.append(f"{''.join(labels)}concat=n={len(labels)}:v=0:a=1[out]")
    try:
        run_ffmpeg(
            [
                *inputs,
                "-filter_complex",
                ";".join(chains),
                "-map",
                "[out]",
                "-c:a",
                "aac",
                "-b:a",
                "96k",
                "-movflags",
                "+faststart",
                "-f",
                "mp4",
                str(tmp),
            ],
            what=f"narration track {out.name}",
        )
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return str(out)
