"""Render a timeline of clips and stills into a finished vertical video.

`render_timeline` is the engine's one entry point for compositing. It builds a single
`-filter_complex` graph and runs a single ffmpeg process for the video; loudness is
normalised in two passes, but the first pass decodes audio only (no video is decoded or
encoded twice).

Per clip, the graph: seeks at the input (only the kept seconds are decoded), resets
timestamps, converts to a constant 30 fps before scaling (less to scale for 60 fps input),
crops in source pixels *before* scaling (a 4K source is cut to 9:16 first, then scaled
once), makes pixels square, draws its overlays (small RGBA PNGs, not full frames), and pads
or trims to the exact planned length so transition offsets are exact. Every branch ends in
yuv420p with a 1/30 timebase, which `xfade` requires. Audio: each clip's track (or silence
where it has none) resampled to 48 kHz stereo, cross-faded in step with the video, mixed
with a music bed (`amix normalize=0`), then normalised to −14 LUFS with loudnorm's linear
mode using the first pass's measurement.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shorts_pipeline.render.errors import RenderError
from shorts_pipeline.render.ffmpeg_run import ProgressFn, run_ffmpeg
from shorts_pipeline.render.geometry import FPS, FRAME_HEIGHT, FRAME_WIDTH, Overlay
from shorts_pipeline.render.loudness import (
    TARGET_LUFS,
    loudnorm_first_pass_filter,
    parse_loudnorm_json,
)
from shorts_pipeline.render.probe import MediaInfo

FitMode = Literal["cover", "contain"]

# Our transition names mapped to xfade's; "slide" moves upwards, which reads naturally on a
# vertical feed.
XFADE_TRANSITIONS = {"fade": "fade", "slide": "slideup", "wipe": "wipeleft"}


@dataclass(frozen=True)
class ClipSegment:
    """A stretch of a source clip: `duration` seconds from `start`."""

    info: MediaInfo
    start: float
    duration: float
    overlays: tuple[Overlay, ...] = ()
    audio: bool = True  # keep the clip's own sound (silence is used when it has none)


@dataclass(frozen=True)
class StillSegment:
    """A full-frame image (title card, outro) shown for `duration` seconds, in silence."""

    path: str
    duration: float
    overlays: tuple[Overlay, ...] = ()


Segment = ClipSegment | StillSegment


@dataclass(frozen=True)
class EncoderSettings:
    video_codec: str = "libx264"
    preset: str = "veryfast"
    crf: int = 23
    audio_bitrate: str = "160k"
    scale_flags: str = "bicubic"
    gop_seconds: float = 2.0


@dataclass(frozen=True)
class Timeline:
    segments: Sequence[Segment]
    fit: FitMode = "cover"
    transition: str = "fade"
    transition_seconds: float = 0.4
    music: str | None = None
    music_db: float = -16.0
    loudness_lufs: float = TARGET_LUFS
    width: int = FRAME_WIDTH
    height: int = FRAME_HEIGHT
    fps: int = FPS
    encoder: EncoderSettings = field(default_factory=EncoderSettings)

    @property
    def crossfade(self) -> float:
        """Seconds each transition overlaps; 0 when there are none."""
        if self.transition == "none" or len(self.segments) < 2:
            return 0.0
        shortest = min(s.duration for s in self.segments)
        # xfade needs its overlap shorter than both neighbours.
        return max(0.0, min(self.transition_seconds, shortest / 2))

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments) - self.crossfade * (len(self.segments) - 1)

    def segment_starts(self) -> list[float]:
        """Where each segment starts on the output timeline, in seconds."""
        starts, t = [], 0.0
        for seg in self.segments:
            starts.append(t)
            t += seg.duration - self.crossfade
        return starts


@dataclass(frozen=True)
class RenderResult:
    path: str
    thumbnail: str | None
    duration: float
    seconds: float  # wall time of the render
    loudness_first_pass_lufs: float | None


def render_timeline(
    timeline: Timeline,
    out_path: str | Path,
    *,
    thumbnail_path: str | Path | None = None,
    thumbnail_at: float | None = None,
    progress: ProgressFn | None = None,
) -> RenderResult:
    """Render `timeline` to `out_path` (MP4) atomically; optionally write a JPEG thumbnail."""
    if not timeline.segments:
        raise RenderError("render", 1, "the timeline has no segments")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    graph = FilterGraph(timeline)

    measured = None
    if graph.has_audible_input:
        log = run_ffmpeg(
            [
                *graph.input_args(),
                "-filter_complex",
                graph.audio_graph(loudnorm_first_pass_filter(timeline.loudness_lufs)),
                "-map",
                "[aout]",
                "-f",
                "null",
                "-",
            ],
            what="loudness analysis",
        )
        measured = parse_loudnorm_json(log)
    loudnorm = measured.filter(timeline.loudness_lufs) if measured else "anull"

    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial.mp4")
    thumb_tmp = None
    outputs = ["-map", "[vout]", "-map", "[aout]", *graph.encode_args(), str(tmp)]
    video_graph = graph.video_graph()
    if thumbnail_path is not None:
        thumb_tmp = Path(thumbnail_path).with_name(f".{Path(thumbnail_path).name}.partial.jpg")
        at = thumbnail_at if thumbnail_at is not None else timeline.duration / 2
        frame = max(0, min(int(at * timeline.fps), int(timeline.duration * timeline.fps) - 1))
        video_graph = video_graph.replace("[vout]", "[vfinal]") + (
            f";[vfinal]split=2[vout][vthumb];[vthumb]select='eq(n\\,{frame})'[tout]"
        )
        outputs += ["-map", "[tout]", "-frames:v", "1", "-q:v", "3", str(thumb_tmp)]
    try:
        run_ffmpeg(
            [
                *graph.input_args(),
                "-filter_complex",
                video_graph + ";" + graph.audio_graph(loudnorm),
                *outputs,
            ],
            what=f"render of {out.name}",
            total_seconds=timeline.duration,
            progress=progress,
        )
        if thumb_tmp is not None and thumbnail_path is not None:
            os.replace(thumb_tmp, thumbnail_path)
        os.replace(tmp, out)
    finally:
        for leftover in (tmp, thumb_tmp):
            if leftover is not None and leftover.exists():
                leftover.unlink()
    return RenderResult(
        path=str(out),
        thumbnail=str(thumbnail_path) if thumbnail_path is not None else None,
        duration=timeline.duration,
        seconds=time.monotonic() - started,
        loudness_first_pass_lufs=measured.input_i if measured else None,
    )


class FilterGraph:
    """Builds the ffmpeg inputs and the filter graph text for one timeline.

    Inputs are numbered in order: one per segment, then one per overlay image, then the
    music bed. User text never appears here: only numbers and file paths, and paths are
    passed as separate arguments, never inside the graph.
    """

    def __init__(self, timeline: Timeline) -> None:
        self.t = timeline
        self.inputs: list[list[str]] = []
        self.segment_input: list[int] = []
        self.overlay_inputs: list[list[tuple[int, Overlay]]] = []
        for seg in timeline.segments:
            self.segment_input.append(len(self.inputs))
            if isinstance(seg, ClipSegment):
                self.inputs.append(
                    ["-ss", f"{seg.start:.3f}", "-t", f"{seg.duration + 0.5:.3f}", "-i", seg.info.path]
                )
            else:
                self.inputs.append(["-framerate", str(timeline.fps), "-i", seg.path])
        for seg in timeline.segments:
            placed = []
            for ov in seg.overlays:
                placed.append((len(self.inputs), ov))
                self.inputs.append(["-framerate", str(timeline.fps), "-i", ov.path])
            self.overlay_inputs.append(placed)
        self.music_input: int | None = None
        if timeline.music:
            self.music_input = len(self.inputs)
            self.inputs.append(["-stream_loop", "-1", "-i", timeline.music])

    @property
    def has_audible_input(self) -> bool:
        return self.music_input is not None or any(
            isinstance(s, ClipSegment) and s.audio and s.info.has_audio for s in self.t.segments
        )

    def input_args(self) -> list[str]:
        # The loudness pass takes the same inputs so the audio graph's input numbers hold;
        # ffmpeg demuxes but never decodes the video streams nothing maps.
        return [arg for inp in self.inputs for arg in inp]

    # ---- video -------------------------------------------------------------------------

    def video_graph(self) -> str:
        t = self.t
        chains = []
        labels = []
        for i, seg in enumerate(t.segments):
            label = f"v{i}"
            chains.append(self._video_segment(i, seg, label))
            labels.append(label)
        chains.append(self._join_video(labels))
        return ";".join(chains)

    def _video_segment(self, i: int, seg: Segment, label: str) -> str:
        t = self.t
        src = f"[{self.segment_input[i]}:v]"
        frames = round(seg.duration * t.fps)
        # Every branch leaves with the same pixel format, frame rate and timebase: xfade
        # refuses to join links that differ in any of them.
        tail = f"format=yuv420p,settb=1/{t.fps},setpts=N/{t.fps}/TB,fps={t.fps}"
        if isinstance(seg, StillSegment):
            head = (
                f"{src}scale={t.width}:{t.height}:flags={t.encoder.scale_flags}"
                f":out_color_matrix=bt709:out_range=tv,setsar=1,format=yuv420p"
            )
            body = head + self._overlay_chain(i, "s")
            # Decode and composite the image once, then repeat that frame.
            return f"{body},loop=loop={frames - 1}:size=1:start=0,{tail},trim=end_frame={frames}[{label}]"
        fitted = self._fit(src, seg.info, f"f{i}")
        body = fitted + self._overlay_chain(i, f"o{i}")
        return (
            f"{body},tpad=stop_mode=clone:stop_duration=2,trim=end_frame={frames},"
            f"{tail}[{label}]"
        )

    def _fit(self, src: str, info: MediaInfo, tag: str) -> str:
        """Fit a clip to the frame: cover crops, contain letterboxes over a blurred fill."""
        t = self.t
        flags = t.encoder.scale_flags
        # Frames reach the graph already rotated (ffmpeg autorotates); pixels may be non-square.
        rotated = info.rotation in (90, 270)
        fw, fh = (info.height, info.width) if rotated else (info.width, info.height)
        sar = (1 / info.sar) if rotated else info.sar
        dw, dh = fw * sar, fh  # display size
        target = t.width / t.height
        pre = f"{src}setpts=PTS-STARTPTS,fps={t.fps}"
        color = ":out_color_matrix=bt709:out_range=tv"
        if dw / dh > target:
            crop_w, crop_h = _even(dh * target / sar), _even(fh)
        else:
            crop_w, crop_h = _even(fw), _even(dw / target)
        crop_w, crop_h = min(crop_w, _even(fw)), min(crop_h, _even(fh))
        cover = (
            f"crop={crop_w}:{crop_h}:(iw-{crop_w})/2:(ih-{crop_h})/2,"
            f"scale={t.width}:{t.height}:flags={flags}{color},setsar=1"
        )
        if t.fit == "cover":
            return f"{pre},{cover}"
        # contain: the whole picture, centred, over a blurred and darkened cover of itself.
        # Blur at 1/8 size, then scale up: a wide blur for a fraction of the cost.
        if dw / dh > target:
            fg_w, fg_h = t.width, _even(t.width * dh / dw)
        else:
            fg_w, fg_h = _even(t.height * dw / dh), t.height
        small_w, small_h = _even(t.width / 8), _even(t.height / 8)
        return (
            f"{pre},split=2[{tag}bg][{tag}fg];"
            f"[{tag}bg]crop={crop_w}:{crop_h}:(iw-{crop_w})/2:(ih-{crop_h})/2,"
            f"scale={small_w}:{small_h}:flags=bilinear{color},boxblur=6:2,"
            f"eq=brightness=-0.12:saturation=0.8,"
            f"scale={t.width}:{t.height}:flags=bilinear,setsar=1[{tag}b];"
            f"[{tag}fg]scale={fg_w}:{fg_h}:flags={flags}{color},setsar=1[{tag}f];"
            f"[{tag}b][{tag}f]overlay=x=(W-w)/2:y=(H-h)/2:format=yuv420"
        )

    def _overlay_chain(self, i: int, tag: str) -> str:
        text = ""
        for k, (n, ov) in enumerate(self.overlay_inputs[i]):
            text += (
                f"[{tag}pre{k}];[{n}:v]format=rgba[{tag}img{k}];"
                f"[{tag}pre{k}][{tag}img{k}]overlay=x={ov.x}:y={ov.y}:format=yuv420:eof_action=repeat"
            )
        return text

    def _join_video(self, labels: list[str]) -> str:
        t = self.t
        if len(labels) == 1:
            return f"[{labels[0]}]null[vout]"
        if t.crossfade <= 0:
            joined = "".join(f"[{lb}]" for lb in labels)
            return f"{joined}concat=n={len(labels)}:v=1:a=0[vout]"
        kind = XFADE_TRANSITIONS.get(t.transition, "fade")
        parts, prev = [], labels[0]
        starts = t.segment_starts()
        for k in range(1, len(labels)):
            out = "vout" if k == len(labels) - 1 else f"x{k}"
            parts.append(
                f"[{prev}][{labels[k]}]xfade=transition={kind}:duration={t.crossfade:.3f}"
                f":offset={starts[k]:.3f}[{out}]"
            )
            prev = out
        return ";".join(parts)

    # ---- audio -------------------------------------------------------------------------

    def audio_graph(self, loudnorm: str) -> str:
        t = self.t
        fmt = "aresample=48000,aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo"
        chains, labels = [], []
        for i, seg in enumerate(t.segments):
            label = f"a{i}"
            d = f"{seg.duration:.3f}"
            if isinstance(seg, ClipSegment) and seg.audio and seg.info.has_audio:
                chains.append(
                    f"[{self.segment_input[i]}:a]asetpts=PTS-STARTPTS,{fmt},apad,"
                    f"atrim=duration={d}[{label}]"
                )
            else:
                chains.append(f"anullsrc=r=48000:cl=stereo,atrim=duration={d},{fmt}[{label}]")
            labels.append(label)
        if len(labels) == 1:
            chains.append(f"[{labels[0]}]anull[amain]")
        elif t.crossfade <= 0:
            joined = "".join(f"[{lb}]" for lb in labels)
            chains.append(f"{joined}concat=n={len(labels)}:v=0:a=1[amain]")
        else:
            prev = labels[0]
            for k in range(1, len(labels)):
                out = "amain" if k == len(labels) - 1 else f"ax{k}"
                chains.append(
                    f"[{prev}][{labels[k]}]acrossfade=d={t.crossfade:.3f}:c1=tri:c2=tri[{out}]"
                )
                prev = out
        total = f"{t.duration:.3f}"
        if self.music_input is not None:
            fade_out = max(0.0, t.duration - 1.5)
            chains.append(
                f"[{self.music_input}:a]{fmt},atrim=duration={total},asetpts=PTS-STARTPTS,"
                f"volume={t.music_db}dB,afade=t=in:d=0.8,afade=t=out:st={fade_out:.3f}:d=1.5[music]"
            )
            chains.append("[amain][music]amix=inputs=2:duration=first:normalize=0[amix]")
            mixed = "amix"
        else:
            mixed = "amain"
        chains.append(f"[{mixed}]{loudnorm},{fmt},atrim=duration={total}[aout]")
        return ";".join(chains)

    def encode_args(self) -> list[str]:
        e, t = self.t.encoder, self.t
        return [
            "-c:v",
            e.video_codec,
            "-preset",
            e.preset,
            "-crf",
            str(e.crf),
            "-profile:v",
            "high",
            "-pix_fmt",
            "yuv420p",
            "-r",
            str(t.fps),
            "-g",
            str(int(t.fps * e.gop_seconds)),
            "-colorspace",
            "bt709",
            "-color_primaries",
            "bt709",
            "-color_trc",
            "bt709",
            "-color_range",
            "tv",
            "-c:a",
            "aac",
            "-b:a",
            e.audio_bitrate,
            "-ar",
            "48000",
            "-ac",
            "2",
            "-movflags",
            "+faststart",
            "-t",
            f"{t.duration:.3f}",
        ]


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)
