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
with a music bed (`amix normalize=0`) and the narration (the bed ducked under it), then
normalised to −14 LUFS with a gain from the first pass's measurement (and a limiter where
the peaks need it, see `loudness.prelimit`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

from shorts_pipeline.render.encoders import EncoderSettings, encoder_from_env, is_nvenc_failure
from shorts_pipeline.render.errors import RenderError
from shorts_pipeline.render.ffmpeg_run import FfmpegError, ProgressFn, run_ffmpeg
from shorts_pipeline.render.geometry import FPS, FRAME_HEIGHT, FRAME_WIDTH, Overlay
from shorts_pipeline.render.loudness import (
    EBUR128_FILTER,
    TARGET_LUFS,
    Loudness,
    loudnorm_filter,
    parse_ebur128_summary,
    prelimit,
)
from shorts_pipeline.render.probe import MediaInfo
from shorts_pipeline.render.subtitles import ass_filter

FitMode = Literal["cover", "contain"]
# Ken Burns motion for stills: a slow zoom (one scale per frame, bilinear: smooth at
# sub-pixel steps) or a pan over a slightly enlarged image (a moving crop: nearly free).
Motion = Literal["none", "zoom_in", "zoom_out", "pan_up", "pan_down"]
MOTIONS: tuple[Motion, ...] = ("zoom_in", "pan_up", "zoom_out", "pan_down")
ZOOM = 0.10  # how much a zoom grows (or shrinks) the picture over a segment
PAN_SCALE = 1.08  # a panned still is enlarged this much, and travels the difference
# The voice is brought to this loudness before it is mixed; the whole mix is normalised
# afterwards, so this sets the voice's level relative to the music and clip sound.
VOICE_LUFS = -16.0
VOICE_COMPRESSOR = "acompressor=threshold=0.1:ratio=3:attack=8:release=120:makeup=1"
DUCK_RAMP = 0.2  # seconds the bed takes to dip under the voice and to come back

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
    colour: str = ""  # a colour filter (numbers only, e.g. a lutyuv) applied after the fit


@dataclass(frozen=True)
class StillSegment:
    """A full-frame image (title card, slide) shown for `duration` seconds, in silence,
    still or with a Ken Burns `motion`."""

    path: str
    duration: float
    overlays: tuple[Overlay, ...] = ()
    motion: Motion = "none"


@dataclass(frozen=True)
class VoiceCue:
    """A narration file heard from `start` (seconds on the output timeline)."""

    path: str
    start: float
    duration: float


Segment = ClipSegment | StillSegment


@dataclass(frozen=True)
class Timeline:
    segments: Sequence[Segment]
    fit: FitMode = "cover"
    transition: str = "fade"
    transition_seconds: float = 0.4
    music: str | None = None
    music_db: float = -16.0
    loudness_lufs: float = TARGET_LUFS
    voice: Sequence[VoiceCue] = ()
    duck_db: float = -12.0  # music and clip sound under the voice
    subtitles: str | None = None  # an ASS file burned over the joined video
    width: int = FRAME_WIDTH
    height: int = FRAME_HEIGHT
    fps: int = FPS
    encoder: EncoderSettings = field(default_factory=encoder_from_env)  # SHORTS_VIDEO_ENCODER

    @property
    def crossfade(self) -> float:
        """Seconds each transition overlaps; 0 when there are none."""
        if self.transition == "none" or len(self.segments) < 2:
            return 0.0
        shortest = min(s.duration for s in self.segments)
        # xfade needs its overlap shorter than both neighbours; whole frames keep the
        # video's cuts and the audio's cross-fades on the same instants.
        seconds = max(0.0, min(self.transition_seconds, shortest / 2))
        return math.floor(seconds * self.fps) / self.fps

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
    encoder: str = "libx264"  # the video encoder that made the file
    notes: tuple[str, ...] = ()  # e.g. why NVENC was not used


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

    # Temp names unique to this call (two renders to one path, from two processes or two
    # threads, never share one) and recognisably temporary (locks.TEMP_FILE): what a killed
    # process leaves behind is swept by the next run.
    tag = f"{os.getpid()}-{os.urandom(3).hex()}"
    tmp = out.with_name(f".{out.name}.{tag}.partial.mp4")
    mix = out.with_name(f".{out.name}.{tag}.mix.wav")
    thumb_tmp = None
    if thumbnail_path is not None:
        thumb = Path(thumbnail_path)
        thumb_tmp = thumb.with_name(f".{thumb.name}.{tag}.partial.jpg")
    measured = None
    mix_used = mix
    encoder = timeline.encoder
    notes: list[str] = []
    try:
        if timeline.voice:
            graph.voice_gain_db = _voice_gain(graph)
        if graph.has_audible_input:
            # Pass 1, audio only: mix every sound into a lossless file and measure it.
            log = run_ffmpeg(
                [
                    *graph.audio_input_args(),
                    "-filter_complex",
                    graph.audio_graph(),
                    "-map",
                    "[amix]",
                    "-c:a",
                    "pcm_f32le",
                    "-f",
                    "wav",
                    str(mix),
                ],
                what="audio mix and loudness analysis",
            )
            measured = parse_ebur128_summary(log)
            mix_used, measured = prelimit(mix, measured, timeline.loudness_lufs)
        audio_args, audio_filter = graph.final_audio(mix_used if measured else None, measured)
        video_graph = graph.video_graph()
        outputs = ["-map", "[vout]", "-map", "[aout]", *graph.encode_args(), str(tmp)]

        # Pass 2: the one process that decodes, composites and encodes the video.
        def encode(outputs: list[str]) -> None:
            run_ffmpeg(
                [
                    *graph.video_input_args(),
                    *audio_args,
                    "-filter_complex",
                    f"{video_graph};{audio_filter}",
                    *outputs,
                ],
                what=f"render of {out.name}",
                total_seconds=timeline.duration,
                progress=progress,
            )

        try:
            encode(outputs)
        except FfmpegError as err:
            if encoder.video_codec != "h264_nvenc" or not is_nvenc_failure(str(err)):
                raise
            # No driver, no device, or every NVENC session taken: the same render on libx264.
            reason = err.reason or "NVENC could not be opened"
            notes.append(f"h264_nvenc failed ({reason}); rendered with libx264 instead")
            encoder = encoder.software()
            encode(["-map", "[vout]", "-map", "[aout]", *graph.encode_args(encoder), str(tmp)])
        if thumb_tmp is not None and thumbnail_path is not None:
            # From the finished file, not as a second output of the render: ffmpeg reports
            # no progress until every output has started, and a thumbnail starts late.
            at = thumbnail_at if thumbnail_at is not None else timeline.duration / 2
            at = max(0.0, min(at, timeline.duration - 1 / timeline.fps))
            run_ffmpeg(
                ["-ss", f"{at:.3f}", "-i", str(tmp), "-frames:v", "1", "-q:v", "3", str(thumb_tmp)],
                what=f"thumbnail of {out.name}",
            )
            os.replace(thumb_tmp, thumbnail_path)
        os.replace(tmp, out)
    finally:
        for leftover in (tmp, thumb_tmp, mix, mix.with_name(mix.stem + ".limited.wav")):
            if leftover is not None and leftover.exists():
                leftover.unlink()
    return RenderResult(
        path=str(out),
        thumbnail=str(thumbnail_path) if thumbnail_path is not None else None,
        duration=timeline.duration,
        seconds=time.monotonic() - started,
        loudness_first_pass_lufs=measured.integrated_lufs if measured else None,
        encoder=encoder.video_codec,
        notes=tuple(notes),
    )


class FilterGraph:
    """Builds the ffmpeg inputs and filter graphs for one timeline.

    Two input lists, numbered separately: the video pass takes one input per segment, then
    one per overlay image; the audio pass takes each clip whose sound is used, then the
    music bed. User text never appears in a graph: only numbers, and file paths travel as
    separate arguments.
    """

    def __init__(self, timeline: Timeline) -> None:
        self.t = timeline
        self.video_inputs: list[list[str]] = []
        self.segment_input: list[int] = []
        self.overlay_inputs: list[list[tuple[int, Overlay]]] = []
        for seg in timeline.segments:
            self.segment_input.append(len(self.video_inputs))
            if isinstance(seg, ClipSegment):
                self.video_inputs.append(_clip_input(seg))
            else:
                self.video_inputs.append(["-framerate", str(timeline.fps), "-i", seg.path])
        for seg in timeline.segments:
            placed = []
            for ov in seg.overlays:
                placed.append((len(self.video_inputs), ov))
                self.video_inputs.append(["-framerate", str(timeline.fps), "-i", ov.path])
            self.overlay_inputs.append(placed)
        self.audio_inputs: list[list[str]] = []
        self.segment_audio: dict[int, int] = {}
        for i, seg in enumerate(timeline.segments):
            if isinstance(seg, ClipSegment) and seg.audio and seg.info.has_audio:
                self.segment_audio[i] = len(self.audio_inputs)
                self.audio_inputs.append(_clip_input(seg))
        self.music_input: int | None = None
        if timeline.music:
            self.music_input = len(self.audio_inputs)
            self.audio_inputs.append(["-stream_loop", "-1", "-i", timeline.music])
        self.voice_inputs: list[int] = []
        for cue in timeline.voice:
            self.voice_inputs.append(len(self.audio_inputs))
            self.audio_inputs.append(["-i", cue.path])
        self.voice_gain_db = 0.0

    @property
    def has_audible_input(self) -> bool:
        return bool(self.audio_inputs)

    def video_input_args(self) -> list[str]:
        return [arg for inp in self.video_inputs for arg in inp]

    def audio_input_args(self) -> list[str]:
        return [arg for inp in self.audio_inputs for arg in inp]

    def final_audio(self, mix: Path | None, measured: Loudness | None) -> tuple[list[str], str]:
        """Inputs and filter for the render pass's audio: the mix, normalised, or silence."""
        fmt = _AUDIO_FORMAT
        total = f"{self.t.duration:.3f}"
        if mix is None or measured is None:
            return [], f"anullsrc=r=48000:cl=stereo,atrim=duration={total},{fmt}[aout]"
        n = len(self.video_inputs)
        norm = loudnorm_filter(measured, self.t.loudness_lufs)
        return ["-i", str(mix)], f"[{n}:a]{norm},{fmt},apad,atrim=duration={total}[aout]"

    # ---- video -------------------------------------------------------------------------

    def video_graph(self) -> str:
        t = self.t
        chains = []
        labels = []
        for i, seg in enumerate(t.segments):
            label = f"v{i}"
            chains.append(self._video_segment(i, seg, label))
            labels.append(label)
        if t.subtitles is None:
            chains.append(self._join_video(labels, "vout"))
        else:
            # Subtitles are drawn once over the joined video, so they cross transitions.
            chains.append(self._join_video(labels, "vjoined"))
            chains.append(f"[vjoined]{ass_filter(t.subtitles)}[vout]")
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
            if seg.motion in ("pan_up", "pan_down"):
                body += f",scale={_even(t.width * PAN_SCALE)}:{_even(t.height * PAN_SCALE)}"
            # Decode and composite the image once, then repeat that frame.
            loop = f"loop=loop={frames - 1}:size=1:start=0"
            motion = self._motion(seg, frames)
            return f"{body},{loop}{motion},{tail},trim=end_frame={frames}[{label}]"
        fitted = self._fit(src, seg.info, f"f{i}")
        if seg.colour:
            fitted += f",{seg.colour}"
        body = fitted + self._overlay_chain(i, f"o{i}")
        return (
            f"{body},tpad=stop_mode=clone:stop_duration=2,trim=end_frame={frames},{tail}[{label}]"
        )

    def _motion(self, seg: StillSegment, frames: int) -> str:
        """Ken Burns: per-frame zoom (scale with eval=frame, then a centred crop) or a pan
        (a crop window moving down or up over the enlarged still), over the segment."""
        t = self.t
        if seg.motion == "none":
            return ""
        span = max(frames - 1, 1) / t.fps
        clock = f",settb=1/{t.fps},setpts=N/{t.fps}/TB"
        if seg.motion in ("zoom_in", "zoom_out"):
            progress = f"(t/{span:.4f})" if seg.motion == "zoom_in" else f"(1-t/{span:.4f})"
            grow = f"(1+{ZOOM}*{progress})"
            return (
                f"{clock},scale=w='2*trunc({t.width}*{grow}/2)':h='2*trunc({t.height}*{grow}/2)'"
                f":eval=frame:flags=bilinear,crop={t.width}:{t.height},setsar=1"
            )
        progress = f"(t/{span:.4f})" if seg.motion == "pan_down" else f"(1-t/{span:.4f})"
        return f"{clock},crop={t.width}:{t.height}:x='(iw-ow)/2':y='(ih-oh)*{progress}',setsar=1"

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
        # Conversions are placed where they cost least: dropping frames (60 -> 30 fps)
        # before scaling, duplicating them (24 -> 30 fps) after; colour matrices are
        # converted only for SD (BT.601) sources, since the conversion doubles scale's cost.
        pre = f"{src}setpts=PTS-STARTPTS" + (f",fps={t.fps}" if info.fps > t.fps + 0.5 else "")
        color = ":out_range=tv" + (
            ":in_color_matrix=bt601:out_color_matrix=bt709" if _is_bt601(info) else ""
        )
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
            return f"{pre},{cover},fps={t.fps}"
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
            f"[{tag}b][{tag}f]overlay=x=(W-w)/2:y=(H-h)/2:format=yuv420,fps={t.fps}"
        )

    def _overlay_chain(self, i: int, tag: str) -> str:
        text = ""
        for k, (n, ov) in enumerate(self.overlay_inputs[i]):
            text += (
                f"[{tag}pre{k}];[{n}:v]format=rgba[{tag}img{k}];"
                f"[{tag}pre{k}][{tag}img{k}]overlay=x={ov.x}:y={ov.y}:format=yuv420:eof_action=repeat"
            )
        return text

    def _join_video(self, labels: list[str], out: str) -> str:
        """Join segments; with transitions, only the overlapping frames go through xfade.

        ffmpeg 5.1's xfade processes every frame it passes on, and a chain of them runs
        each frame of the video through each one. So every segment is split (by reference,
        no copy) into head, middle and tail; each tail/head pair is cross-faded on its own
        and the pieces are concatenated. Same output, a fraction of the work.
        """
        t = self.t
        if len(labels) == 1:
            return f"[{labels[0]}]null[{out}]"
        if t.crossfade <= 0:
            joined = "".join(f"[{lb}]" for lb in labels)
            return f"{joined}concat=n={len(labels)}:v=1:a=0[{out}]"
        kind = XFADE_TRANSITIONS.get(t.transition, "fade")
        overlap = round(t.crossfade * t.fps)
        last = len(labels) - 1
        parts, pieces = [], []
        for i, label in enumerate(labels):
            frames = round(t.segments[i].duration * t.fps)
            cuts = []
            if i > 0:
                cuts.append(("h", 0, overlap))
            body_start, body_end = (
                (overlap if i > 0 else 0),
                (frames - overlap if i < last else frames),
            )
            if body_end > body_start:
                cuts.append(("m", body_start, body_end))
            if i < last:
                cuts.append(("t", frames - overlap, frames))
            outs = "".join(f"[{label}{name}]" for name, _, _ in cuts)
            parts.append(
                f"[{label}]split={len(cuts)}{outs}" if len(cuts) > 1 else f"[{label}]null{outs}"
            )
            for name, a, b in cuts:
                parts.append(
                    f"[{label}{name}]trim=start_frame={a}:end_frame={b},setpts=PTS-STARTPTS"
                    f"[{label}{name}c]"
                )
            if i > 0:
                prev = labels[i - 1]
                parts.append(
                    f"[{prev}tc][{label}hc]xfade=transition={kind}"
                    f":duration={overlap / t.fps:.4f}:offset=0[{label}x]"
                )
                pieces.append(f"[{label}x]")
            if body_end > body_start:
                pieces.append(f"[{label}mc]")
        # xfade's frames carry no duration, so concat starts the piece after each one on
        # its last frame's timestamp: two frames share it and the encoder shows one twice
        # and drops the other. Counting the frames again gives each its own slot.
        parts.append(f"{''.join(pieces)}concat=n={len(pieces)}:v=1:a=0,setpts=N/{t.fps}/TB[{out}]")
        return ";".join(parts)

    # ---- audio -------------------------------------------------------------------------

    def audio_graph(self) -> str:
        """The audio pass: each clip's sound (or silence) in step with the video's cuts and
        cross-fades, the music bed under it, then measured; the output label is [amix]."""
        t = self.t
        fmt = _AUDIO_FORMAT
        chains, labels = [], []
        for i, seg in enumerate(t.segments):
            label = f"a{i}"
            d = f"{seg.duration:.3f}"
            if i in self.segment_audio:
                chains.append(
                    f"[{self.segment_audio[i]}:a]asetpts=PTS-STARTPTS,{fmt},apad,"
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
                    f"[{prev}][{labels[k]}]acrossfade=d={t.crossfade:.4f}:c1=tri:c2=tri[{out}]"
                )
                prev = out
        total = f"{t.duration:.3f}"
        mixed = "amain"
        if self.music_input is not None:
            fade_out = max(0.0, t.duration - 1.5)
            chains.append(
                f"[{self.music_input}:a]{fmt},atrim=duration={total},asetpts=PTS-STARTPTS,"
                f"volume={t.music_db}dB,afade=t=in:d=0.8,afade=t=out:st={fade_out:.3f}:d=1.5[music]"
            )
            chains.append("[amain][music]amix=inputs=2:duration=first:normalize=0[amixed]")
            mixed = "amixed"
        if self.voice_inputs:
            chains += self._voice_chains("voice", self.voice_inputs, self.voice_gain_db)
            # The bed (clip sound and music) dips under the voice: volume automation from the
            # known cue times, exact and deterministic, with short ramps.
            chains.append(f"[{mixed}]volume='{self._duck_expression()}':eval=frame[ducked]")
            chains.append("[ducked][voice]amix=inputs=2:duration=first:normalize=0[avoiced]")
            mixed = "avoiced"
        chains.append(f"[{mixed}]atrim=duration={total},{EBUR128_FILTER}[amix]")
        return ";".join(chains)

    def _voice_chains(self, out: str, inputs: Sequence[int], gain_db: float | None) -> list[str]:
        """Every voice cue delayed to its start and mixed into one track of the video's length;
        `inputs` are the cues' input numbers in the run the chains are for."""
        t = self.t
        chains, labels = [], []
        for k, (n, cue) in enumerate(zip(inputs, t.voice, strict=True)):
            delay = max(0, round(cue.start * 1000))
            chains.append(
                f"[{n}:a]asetpts=PTS-STARTPTS,{_AUDIO_FORMAT},adelay=delays={delay}:all=1[vc{k}]"
            )
            labels.append(f"[vc{k}]")
        joined = "".join(labels)
        gain = "" if gain_db is None else f",volume={gain_db:.2f}dB"
        # A gentle compressor evens the voice out (synthetic speech is peaky), so it sits
        # steadily over the music and needs less limiting later.
        chains.append(
            f"{joined}amix=inputs={len(labels)}:duration=longest:normalize=0,{VOICE_COMPRESSOR}"
            f"{gain},"
            f"apad,atrim=duration={t.duration:.3f}[{out}]"
        )
        return chains

    def voice_measure_args(self) -> list[str]:
        """An audio-only run that mixes the voice cues alone and measures their loudness."""
        inputs = [arg for n in self.voice_inputs for arg in self.audio_inputs[n]]
        chains = self._voice_chains("vm", range(len(self.voice_inputs)), None)
        graph = ";".join([*chains, f"[vm]{EBUR128_FILTER}[vmeasured]"])
        return [*inputs, "-filter_complex", graph, "-map", "[vmeasured]", "-f", "null", "-"]

    def _duck_expression(self) -> str:
        """Gain of the bed over time: 1, dipping to duck_db wherever a voice cue is heard."""
        t = self.t
        depth = 1 - 10 ** (t.duck_db / 20)
        r = DUCK_RAMP
        dips = [
            f"clip((t-{c.start - r:.3f})/{r},0,1)*clip(({c.start + c.duration + r:.3f}-t)/{r},0,1)"
            for c in t.voice
        ]
        if not dips:
            return "1"
        combined = dips[0]
        for dip in dips[1:]:
            combined = f"max({combined},{dip})"
        return f"1-{depth:.4f}*{combined}"

    def encode_args(self, encoder: EncoderSettings | None = None) -> list[str]:
        """Output arguments: the timeline's encoder (or `encoder`), colour tags, AAC, faststart."""
        e, t = encoder or self.t.encoder, self.t
        return [
            *e.video_args(t.fps),
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


_AUDIO_FORMAT = "aresample=48000,aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo"


def _voice_gain(graph: FilterGraph) -> float:
    """dB that brings the voice track to VOICE_LUFS (measured on its own, audio only)."""
    log = run_ffmpeg(graph.voice_measure_args(), what="voice loudness measurement")
    measured = parse_ebur128_summary(log)
    if measured.silent or not math.isfinite(measured.integrated_lufs):
        return 0.0
    return max(-30.0, min(30.0, VOICE_LUFS - measured.integrated_lufs))


def _clip_input(seg: ClipSegment) -> list[str]:
    # Seek at the input: only the kept seconds are decoded. The small margin lets the fps
    # filter see the frame after the last one it keeps; tpad covers a clip that ends early.
    return ["-ss", f"{seg.start:.3f}", "-t", f"{seg.duration + 0.1:.3f}", "-i", seg.info.path]


def _is_bt601(info: MediaInfo) -> bool:
    if info.color_matrix:
        return info.color_matrix in {"smpte170m", "bt470bg", "bt601"}
    # Untagged: players assume BT.601 for standard definition, BT.709 above it.
    return min(info.display_width, info.display_height) < 720


def _even(value: float | Fraction) -> int:
    return max(2, int(value) // 2 * 2)
