"""Benchmark of the ranking render: our one-graph ffmpeg render against two floors and MoviePy.

The issue's target, for 5 mixed clips (one of them 4K HEVC 10-bit) rendered into a ~28 s
1080x1920 short: at most 1.6x the pure-encode floor, at least 5x faster than MoviePy 2, and
at most 1 GiB peak RSS. Measured in one run, each variant in a fresh child process:

- floor-lavfi  ffmpeg encoding a 1080x1920 30 fps `testsrc2` source (plus a sine) of the
               same length with exactly the engine's encoder arguments. The issue's floor.
- ours         `ranking_timeline(...)` then `render_timeline(...)`, as the `video` asset
               calls them (thumbnail and progress callback included), with every ffmpeg
               pass the engine runs (audio/loudness pass, the one-graph render, ...).
- floor-real   the same encoder arguments on *our output's* frames, decoded to raw video
               beforehand: synthetic lavfi frames encode far cheaper than footage, so this
               is the floor for the pictures we actually make (see STACK-FACTS.md).
- moviepy      the same timeline built with MoviePy 2 and written with `write_videofile`.

Wall time, CPU time, peak RSS of the process tree (sampled from /proc; `wait4`'s ru_maxrss
is only the largest single process, see bench/README.md), the load average and the CPU that
other processes used during each measurement are recorded, so a run on a busy machine can be
recognised as one. Inputs are synthesised once into a cache directory (bench/.cache/).

    uv run --group bench python bench/ranking_render.py            # the full benchmark
    uv run --group bench python bench/ranking_render.py --smoke    # CI: tiny, < 60 s
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shorts_pipeline.render.synth import ClipRecipe

if TYPE_CHECKING:
    from shorts_pipeline.render.timeline import Timeline

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_CACHE = BENCH_DIR / ".cache"

VARIANTS = ("floor-lavfi", "ours", "floor-real", "moviepy")
TARGET_FLOOR_RATIO = 1.6  # ours / floor-lavfi, at most
TARGET_MOVIEPY_SPEEDUP = 5.0  # moviepy / ours, at least
TARGET_PEAK_RSS_MIB = 1024.0  # ours, at most

SAMPLE_SECONDS = 0.1  # /proc sampling period for the tree's RSS: costs 1-4 % of one core
BUSY_WARNING_PCT = 10  # warn when other processes took more of the machine than this
QUIET_CORES = 0.25  # "quiet" = other processes busy below this many cores over 1 s
MIB = 1024 * 1024


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.child:
        return _run_child(args)

    plan = SMOKE_PLAN if args.smoke else FULL_PLAN
    repeat = 1 if args.smoke else args.repeat
    moviepy_repeat = 0 if args.skip_moviepy else min(repeat, args.moviepy_repeat or repeat)
    settle = args.settle if args.settle is not None else (0.0 if args.smoke else 30.0)
    cache = Path(args.cache).resolve()

    print(f"preparing inputs in {cache} ...", flush=True)
    prepared = time.perf_counter()
    run_dir = cache / plan.name / f"run-{os.getpid()}"
    manifest_path = prepare_inputs(cache, plan, run_dir)
    manifest = json.loads(manifest_path.read_text())
    timeline = build_timeline(manifest)
    print(
        f"  {len(manifest['clips'])} clips, {len(timeline.segments)} segments, "
        f"{timeline.duration:.2f} s at {timeline.width}x{timeline.height} {timeline.fps} fps "
        f"({time.perf_counter() - prepared:.1f} s)",
        flush=True,
    )

    bench = Bench(manifest_path, timeline, settle=settle)
    runs: list[Run] = []
    try:
        for round_no in range(1, repeat + 1):
            todo = ["floor-lavfi", "ours", "floor-real"]
            if round_no <= moviepy_repeat:
                todo.append("moviepy")
            for variant in todo:
                run = bench.measure(variant, round_no)
                runs.append(run)
                print(
                    f"  round {round_no}/{repeat} {variant:<11} {run.wall_s:7.2f} s wall "
                    f"{run.cpu_s:7.1f} s CPU {run.peak_tree_rss_mib:6.0f} MiB "
                    f"load {run.load_before[0]:.2f} others {run.others_cpu_pct:3.0f}%"
                    + (f" ({', '.join(run.others_top[:2])})" if run.others_cpu_pct > 10 else ""),
                    flush=True,
                )
    finally:
        bench.cleanup(keep=args.keep)

    summary = summarise(runs, timeline)
    report = build_report(args, plan, manifest, timeline, runs, summary, bench, moviepy_repeat)
    print()
    print(format_report(report))
    if args.json:
        _write_json(Path(args.json), report)
        print(f"\nresults written to {args.json}")
    return 0


# --- what is rendered ----------------------------------------------------------------------


@dataclass(frozen=True)
class BenchClip:
    demo_id: str  # a DEMO_LIBRARY id, or a name for a recipe of our own
    caption: str
    recipe: ClipRecipe | None = None  # None: the demo library's recipe


@dataclass(frozen=True)
class BenchPlan:
    name: str
    title: str
    clips: tuple[BenchClip, ...]
    target_seconds: float
    title_seconds: float = 2.0
    outro_seconds: float = 2.0
    transition_seconds: float = 0.4

    @property
    def clip_seconds(self) -> float:
        """Each clip's length, so that the whole timeline lasts `target_seconds`."""
        segments = len(self.clips) + 2
        stills = self.title_seconds + self.outro_seconds
        overlap = self.transition_seconds * (segments - 1)
        return round((self.target_seconds - stills + overlap) / len(self.clips), 3)


# The demo library's shapes: 1080p h264 stereo, 1080x1920 portrait, 720p 60 fps, 4:3 25 fps
# with 44.1 kHz sound, and 4K HEVC 10-bit (6 s long: enough for a 5.3 s trim).
FULL_PLAN = BenchPlan(
    name="full",
    title="Top 5 football skills of the year",
    clips=(
        BenchClip("rabona-goal-30-yards", "Insane rabona goal from 30 yards"),
        BenchClip("street-football-skills-vertical", "Street football skills"),
        BenchClip("dribbling-skills-60fps", "Dribbling skills in 60 fps"),
        BenchClip("classic-free-kick-1998", "Classic free kick from 1998"),
        BenchClip("stadium-flyover-4k", "Stadium flyover in 4K"),
    ),
    target_seconds=28.0,
)


# Two small clips between short cards: every code path of the full run, 3.6 s of 1080x1920.
SMOKE_PLAN = BenchPlan(
    name="smoke",
    title="Smoke test",
    clips=(
        BenchClip("smoke-landscape", "Smoke landscape", ClipRecipe(640, 360, 3, 30, seed=41)),
        BenchClip(
            "smoke-portrait",
            "Smoke portrait",
            ClipRecipe(360, 640, 3, 25, audio_rate=44100, pattern="gradients", seed=42),
        ),
    ),
    target_seconds=3.6,
    title_seconds=0.8,
    outro_seconds=0.8,
)


def prepare_inputs(cache: Path, plan: BenchPlan, run_dir: Path) -> Path:
    """Synthesise clips and music once into `cache`; draw the cards and write the manifest
    into `run_dir`, which belongs to this run alone (two runs at once must not share outputs).
    """
    from shorts_pipeline.render.cards import draw_outro_card, draw_rank_badge, draw_title_card
    from shorts_pipeline.render.synth import DEMO_LIBRARY, make_clip, make_music_bed

    demo = {c.id: c.recipe for c in DEMO_LIBRARY}
    clip_dir, card_dir = cache / "clips", run_dir / "cards"
    card_dir.mkdir(parents=True, exist_ok=True)
    seconds = plan.clip_seconds

    clips = []
    for index, clip in enumerate(plan.clips):
        recipe = clip.recipe or demo.get(clip.demo_id)
        if recipe is None:
            raise SystemExit(f"{clip.demo_id!r} is not in synth.DEMO_LIBRARY any more")
        if recipe.seconds < seconds:
            raise SystemExit(f"{clip.demo_id} lasts {recipe.seconds} s, < the {seconds} s trim")
        # The recipe's fingerprint is in the name: a changed recipe renders a new file.
        path = clip_dir / f"{clip.demo_id}-{recipe.fingerprint}.{recipe.container}"
        if not path.exists():
            print(f"  synthesising {path.name} ...", flush=True)
            make_clip(path, recipe)
        rank = len(plan.clips) - index  # the plan's order is the countdown's order
        badge = draw_rank_badge(str(card_dir / f"badge-{rank}.png"), rank, clip.caption)
        clips.append(
            {
                "path": str(path),
                "rank": rank,
                # Start up to 1 s in, and end at least 0.2 s before the clip does.
                "start": round(max(0.0, min(1.0, recipe.seconds - seconds - 0.2)), 3),
                "seconds": seconds,
                "badge": asdict(badge),
                "recipe": repr(recipe),
            }
        )

    music = cache / "music-bed-60s.m4a"
    if not music.exists():
        make_music_bed(music, 60.0)
    manifest = {
        "plan": plan.name,
        "clips": clips,
        "title_card": draw_title_card(
            str(card_dir / "title.png"), plan.title, subtitle=f"Top {len(clips)}"
        ),
        "outro_card": draw_outro_card(str(card_dir / "outro.png"), plan.title),
        "title_seconds": plan.title_seconds,
        "outro_seconds": plan.outro_seconds,
        "transition_seconds": plan.transition_seconds,
        "music": str(music),
    }
    path = run_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def build_timeline(manifest: dict[str, Any]) -> Timeline:
    """The ranking timeline of a manifest, exactly as the `video` asset builds one."""
    from shorts_pipeline.render.geometry import Overlay
    from shorts_pipeline.render.probe import probe_clip
    from shorts_pipeline.render.ranking import RankedClip, ranking_timeline

    clips = [
        RankedClip(
            c["rank"],
            probe_clip(c["path"], check_tail=False),
            c["start"],
            c["seconds"],
            Overlay(**c["badge"]),
        )
        for c in manifest["clips"]
    ]
    return ranking_timeline(
        clips,
        title_card=manifest["title_card"],
        outro_card=manifest["outro_card"],
        title_seconds=manifest["title_seconds"],
        outro_seconds=manifest["outro_seconds"],
        fit="cover",
        transition="fade",
        transition_seconds=manifest["transition_seconds"],
        music=manifest["music"],
    )


def encoder_args(timeline: Timeline) -> list[str]:
    """The engine's own output arguments (codec, preset, crf, profile, GOP, colour tags, AAC,
    +faststart, -t), so the floors follow any change to `EncoderSettings` or the engine."""
    from shorts_pipeline.render.timeline import FilterGraph

    return FilterGraph(timeline).encode_args()


# --- measuring -----------------------------------------------------------------------------


@dataclass
class Run:
    variant: str
    round: int
    wall_s: float  # the work: the ffmpeg process, or the timed section inside a Python child
    process_wall_s: float  # spawn to exit, interpreter start-up and input probing included
    cpu_s: float  # user + system of the child and every descendant it reaped (wait4)
    peak_tree_rss_mib: float  # largest sum of RSS over the live process tree, sampled
    max_process_rss_mib: float  # wait4's ru_maxrss: the largest single process
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    others_cpu_s: float  # CPU busy time on the machine not spent by our tree (approximate)
    others_cpu_pct: float  # others_cpu_s as a share of the machine's capacity
    others_top: list[str]  # the other processes that used the most CPU during the run
    steal_s: float  # time the hypervisor gave our vCPUs to someone else
    settle_wait_s: float  # how long we waited for a quiet machine before starting
    settle_busy_cores: float | None  # other processes' load when we started
    render_sha1: str  # hash of shorts_pipeline/render/*.py when the run started
    processes: list[dict[str, Any]] = field(default_factory=list)
    child: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)


class Bench:
    """Runs one variant at a time in a fresh child and measures it from the outside."""

    def __init__(self, manifest: Path, timeline: Timeline, settle: float) -> None:
        self.manifest = manifest
        self.timeline = timeline
        self.settle = settle
        self.out_dir = manifest.parent / "out"
        self.log_dir = manifest.parent / "logs"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.raw_frames = manifest.parent / "tmp" / "ours-frames.yuv"
        self.ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
        self.encode = encoder_args(timeline)

    def measure(self, variant: str, round_no: int) -> Run:
        out = self.out_dir / f"{variant}.mp4"
        if variant == "floor-real" and not self.raw_frames.exists():
            self._decode_raw_frames(self.out_dir / "ours.mp4")
        cmd, env = self._command(variant, out)
        waited, busy = _wait_for_quiet(self.settle)
        render_sha1 = render_sources_sha1()
        result_file = self.out_dir / f".{variant}.result.json"
        result_file.unlink(missing_ok=True)
        log = self.log_dir / f"{variant}-{round_no}.log"
        load_before = os.getloadavg()
        cpu_before = _cpu_times()
        with log.open("wb") as log_file:
            started = time.perf_counter()
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env
            )
            sampler = TreeSampler(proc.pid, started)
            sampler.start()
            _, status, usage = os.wait4(proc.pid, 0)
            process_wall = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
            sampler.stop()
        cpu_after = _cpu_times()
        load_after = os.getloadavg()
        if proc.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{variant} failed (exit {proc.returncode}); {log}:\n{tail}")
        child = json.loads(result_file.read_text()) if result_file.exists() else {}
        cpu = usage.ru_utime + usage.ru_stime
        busy_s = cpu_after.busy - cpu_before.busy
        others = max(0.0, busy_s - cpu)
        return Run(
            variant=variant,
            round=round_no,
            wall_s=child.get("work_seconds", process_wall),
            process_wall_s=process_wall,
            cpu_s=cpu,
            peak_tree_rss_mib=sampler.peak_bytes / MIB,
            max_process_rss_mib=usage.ru_maxrss / 1024,  # KiB on Linux
            load_before=load_before,
            load_after=load_after,
            others_cpu_s=others,
            others_cpu_pct=100 * others / (process_wall * _cpu_count()),
            others_top=sampler.others_top(),
            steal_s=cpu_after.steal - cpu_before.steal,
            settle_wait_s=waited,
            settle_busy_cores=busy,
            render_sha1=render_sha1,
            processes=sampler.processes(),
            child=child,
            output=_describe_output(out) if round_no == 1 else {},
        )

    def cleanup(self, keep: bool) -> None:
        # Raw 1080x1920 frames take 3 MB each (2.6 GB for 28 s): never keep them.
        self.raw_frames.unlink(missing_ok=True)
        if keep:
            print(f"outputs, logs and cards kept in {self.manifest.parent}")
        else:
            shutil.rmtree(self.manifest.parent, ignore_errors=True)

    def _command(self, variant: str, out: Path) -> tuple[list[str], dict[str, str]]:
        t = self.timeline
        ffmpeg = [self.ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
        env = dict(os.environ)
        if variant == "floor-lavfi":
            source = [
                *("-f", "lavfi", "-i", f"testsrc2=s={t.width}x{t.height}:r={t.fps}"),
                *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
            ]
            return [*ffmpeg, *source, "-map", "0:v", "-map", "1:a", *self.encode, str(out)], env
        if variant == "floor-real":
            source = [
                *("-f", "rawvideo", "-pix_fmt", "yuv420p", "-video_size", f"{t.width}x{t.height}"),
                *("-framerate", str(t.fps), "-i", str(self.raw_frames)),
                *("-i", str(self.out_dir / "ours.mp4")),
            ]
            return [*ffmpeg, *source, "-map", "0:v", "-map", "1:a", *self.encode, str(out)], env
        # MoviePy defaults to imageio-ffmpeg's bundled ffmpeg; give it the same ffmpeg (and
        # so the same libx264 build) as the other variants.
        env.setdefault("FFMPEG_BINARY", self.ffmpeg)
        child = [sys.executable, str(Path(__file__).resolve()), "--child", variant]
        child += ["--manifest", str(self.manifest), "--out", str(out)]
        child += ["--result", str(self.out_dir / f".{variant}.result.json")]
        return child, env

    def _decode_raw_frames(self, ours: Path) -> None:
        print("  decoding our output to raw frames for floor-real (not timed) ...", flush=True)
        self.raw_frames.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *(self.ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"),
                *("-i", str(ours), "-map", "0:v", "-f", "rawvideo", "-pix_fmt", "yuv420p"),
                str(self.raw_frames),
            ],
            check=True,
        )


class TreeSampler(threading.Thread):
    """Samples the RSS of a process and all its descendants from /proc every 0.1 s.

    `wait4`'s ru_maxrss is the peak of the single largest process in the tree, not of the
    tree: two 300 MB children alive together report 300 MB. The tree's peak needs sampling.
    One scan of /proc reads each process's `stat` once (parent pid, RSS, CPU ticks).
    """

    def __init__(self, root: int, started: float) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.started = started
        self.peak_bytes = 0
        self._stop_event = threading.Event()
        self._seen: dict[int, dict[str, Any]] = {}
        self._others: dict[int, list[Any]] = {}  # pid: [name, first ticks, last ticks]
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._tick = os.sysconf("SC_CLK_TCK")

    def run(self) -> None:
        while not self._stop_event.is_set():
            self._sample()
            self._stop_event.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def processes(self) -> list[dict[str, Any]]:
        """Every process seen in the tree: when it ran, its peak RSS and (last seen) CPU."""
        rows = sorted(self._seen.values(), key=lambda p: p["first_s"])
        return [
            {**p, "first_s": round(p["first_s"], 2), "last_s": round(p["last_s"], 2)} for p in rows
        ]

    def others_top(self, n: int = 5) -> list[str]:
        """Processes outside the tree that used CPU meanwhile ('bench' is this script, whose
        sampling costs a little too); CPU before a process was first seen is not counted."""
        used = sorted(
            ((last - first) / self._tick, name, pid)
            for pid, (name, first, last) in self._others.items()
        )
        return [f"{name} ({pid}): {s:.1f} s" for s, name, pid in reversed(used[-n:]) if s >= 0.3]

    def _sample(self) -> None:
        now = time.perf_counter() - self.started
        stats = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                stat = _read_stat(int(name))
                if stat is not None:
                    stats[int(name)] = stat
        tree, frontier = set(), [self.root]
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        while frontier:
            pid = frontier.pop()
            if pid in stats and pid not in tree:
                tree.add(pid)
                frontier.extend(children.get(pid, []))
        for pid, (_, _, ticks, name) in stats.items():
            if pid not in tree:
                seen = self._others.setdefault(pid, [name, ticks, ticks])
                seen[2] = ticks
                if pid == os.getpid():
                    seen[0] = "bench"
        total = 0
        for pid in tree:
            _, rss_pages, ticks, _ = stats[pid]
            rss = rss_pages * self._page
            total += rss
            proc = self._seen.get(pid)
            if proc is None:
                proc = self._seen[pid] = {"pid": pid, "what": _describe_process(pid)}
                proc.update(first_s=now, peak_rss_mib=0.0)
            proc["last_s"] = now
            proc["peak_rss_mib"] = round(max(proc["peak_rss_mib"], rss / MIB), 1)
            proc["cpu_s"] = round(ticks / self._tick, 2)
        self.peak_bytes = max(self.peak_bytes, total)


def _read_stat(pid: int) -> tuple[int, int, int, str] | None:
    """(parent pid, RSS in pages, user + system ticks, name) from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    name = data[data.find(b"(") + 1 : data.rfind(b")")].decode(errors="replace")
    fields = data[data.rfind(b")") + 2 :].split()  # fields from the 3rd (state) on
    return int(fields[1]), int(fields[21]), int(fields[11]) + int(fields[12]), name


def _describe_process(pid: int) -> str:
    """'ffmpeg -> out.mp4', 'ffmpeg -> null', 'python ...': enough to tell the passes apart."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    args = [a.decode(errors="replace") for a in argv if a]
    if not args:
        return "?"
    name = Path(args[0]).name
    if "ffmpeg" in name:
        if "rawvideo" in args and "-" in args:
            return f"{name} (pipe)"
        outputs = [
            a
            for before, a in itertools.pairwise(args)
            if before != "-i" and a.endswith((".mp4", ".m4a", ".mov", ".jpg", ".png"))
        ]
        target = "null" if "null" in args else Path(outputs[0] if outputs else args[-1]).name
        return f"{name} -> {target}"
    return " ".join([name, *args[1:4]])[:80]


@dataclass(frozen=True)
class CpuTimes:
    busy: float  # seconds of user, nice, system, irq and softirq time on all CPUs
    steal: float


def _cpu_times() -> CpuTimes:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return CpuTimes((user + nice + system + irq + softirq) / tick, steal / tick)


def _wait_for_quiet(max_wait: float) -> tuple[float, float | None]:
    """Wait (up to `max_wait` s) until other processes keep less than QUIET_CORES busy over a
    1 s window. Returns the seconds waited and the last load seen (None when not looked)."""
    if max_wait <= 0:
        return 0.0, None
    started = time.monotonic()
    while True:
        before = _cpu_times()
        time.sleep(1.0)
        busy = _cpu_times().busy - before.busy
        waited = time.monotonic() - started
        if busy < QUIET_CORES or waited >= max_wait:
            return round(waited, 1), round(busy, 2)


def _describe_output(path: Path) -> dict[str, Any]:
    """What ffprobe reads back: shows both renders made the same kind of file."""
    from shorts_pipeline.render.probe import probe_json

    data = probe_json(path)
    fmt = data.get("format", {})
    out: dict[str, Any] = {
        "duration_s": round(float(fmt.get("duration", 0)), 3),
        "size_mib": round(int(fmt.get("size", 0)) / MIB, 2),
        "bit_rate_kbps": round(int(fmt.get("bit_rate", 0)) / 1000),
    }
    for s in data.get("streams", []):
        if s.get("codec_type") == "video":
            out["video"] = {
                k: s.get(k)
                for k in ("codec_name", "profile", "width", "height", "pix_fmt", "color_space")
            }
            out["video"]["frames"] = int(s.get("nb_frames", 0))
            out["video"]["avg_frame_rate"] = s.get("avg_frame_rate")
        elif s.get("codec_type") == "audio":
            out["audio"] = {k: s.get(k) for k in ("codec_name", "sample_rate", "channels")}
    return out


# --- the children --------------------------------------------------------------------------


def _run_child(args: argparse.Namespace) -> int:
    manifest = json.loads(Path(args.manifest).read_text())
    timeline = build_timeline(manifest)  # probing the inputs is not part of the render
    out = Path(args.out)
    thumb = out.with_suffix(".jpg")
    renderers: dict[str, Callable[[Timeline, Path, Path], dict[str, Any]]] = {
        "ours": _render_ours,
        "moviepy": _render_moviepy,
    }
    # Imports are start-up, not render: load them before the clock starts.
    if args.child == "moviepy":
        import moviepy  # noqa: F401
    import shorts_pipeline.render.timeline  # noqa: F401

    started = time.perf_counter()
    details = renderers[args.child](timeline, out, thumb)
    result = {"work_seconds": time.perf_counter() - started, **details}
    Path(args.result).write_text(json.dumps(result, indent=2))
    return 0


def _render_ours(timeline: Timeline, out: Path, thumb: Path) -> dict[str, Any]:
    from shorts_pipeline.render.ranking import number_one_midpoint
    from shorts_pipeline.render.timeline import render_timeline

    result = render_timeline(
        timeline,
        out,
        thumbnail_path=thumb,
        thumbnail_at=number_one_midpoint(timeline),
        progress=lambda _fraction: None,  # the asset follows progress; so do we
    )
    return {"render_seconds": result.seconds, "first_pass_lufs": result.loudness_first_pass_lufs}


def _render_moviepy(timeline: Timeline, out: Path, thumb: Path) -> dict[str, Any]:
    """The same timeline the usual MoviePy 2 way: cover-crop, badges, crossfades, music.

    Cropped to 9:16 in source pixels before resizing (as our graph does: the cheaper order).
    No loudness normalisation. MoviePy ignores pixel aspect (it would stretch anamorphic
    clips) and swaps width and height for rotated ones; these inputs have neither.
    """
    from moviepy import (
        AudioFileClip,
        CompositeAudioClip,
        CompositeVideoClip,
        ImageClip,
        VideoFileClip,
        afx,
        concatenate_videoclips,
        vfx,
    )

    from shorts_pipeline.render.ranking import number_one_midpoint
    from shorts_pipeline.render.timeline import ClipSegment

    t = timeline
    size = (t.width, t.height)
    fade = t.crossfade
    opened = []
    parts = []
    for index, seg in enumerate(t.segments):
        if isinstance(seg, ClipSegment):
            source = VideoFileClip(seg.info.path, audio_fps=48000)
            opened.append(source)
            part = _moviepy_cover(source.subclipped(seg.start, seg.start + seg.duration), size)
            if part.audio is not None and fade:
                part = part.with_audio(
                    part.audio.with_effects([afx.AudioFadeIn(fade), afx.AudioFadeOut(fade)])
                )
        else:
            part = ImageClip(seg.path).with_duration(seg.duration)
        if seg.overlays:
            badges = [
                ImageClip(ov.path).with_duration(seg.duration).with_position((ov.x, ov.y))
                for ov in seg.overlays
            ]
            # use_bgclip: the clip is the opaque background (no mask to compute), but the
            # composite then drops the background's sound, so it is put back.
            part = CompositeVideoClip([part, *badges], size=size, use_bgclip=True).with_audio(
                part.audio
            )
        if index > 0 and fade:
            part = part.with_effects([vfx.CrossFadeIn(fade)])
        parts.append(part)
    video = concatenate_videoclips(parts, method="compose", padding=-fade, bg_color=(0, 0, 0))

    if t.music:
        music = AudioFileClip(t.music, fps=48000)
        if music.duration < video.duration:
            music = music.with_effects([afx.AudioLoop(duration=video.duration)])
        else:
            music = music.subclipped(0, video.duration)
        music = music.with_volume_scaled(10 ** (t.music_db / 20)).with_effects(
            [afx.AudioFadeIn(0.8), afx.AudioFadeOut(1.5)]
        )
        tracks = [a for a in (video.audio, music) if a is not None]
        video = video.with_audio(CompositeAudioClip(tracks).with_duration(video.duration))

    enc = t.encoder
    video.write_videofile(
        str(out),
        fps=t.fps,
        codec=enc.video_codec,
        preset=enc.preset,
        threads=2,
        audio_codec="aac",
        audio_bitrate=enc.audio_bitrate,
        audio_fps=48000,
        ffmpeg_params=[
            *("-crf", str(enc.crf), "-profile:v", "high"),
            *("-g", str(int(t.fps * enc.gop_seconds)), "-movflags", "+faststart"),
        ],
        temp_audiofile_path=str(out.parent),
        logger=None,
    )
    video.save_frame(str(thumb), t=number_one_midpoint(t))
    for clip in opened:
        clip.close()
    return {"ffmpeg_binary": os.environ.get("FFMPEG_BINARY", "imageio-ffmpeg")}


def _moviepy_cover(clip: Any, size: tuple[int, int]) -> Any:
    """Crop the middle of `clip` to the frame's aspect, then resize it to the frame."""
    width, height = clip.size
    target = size[0] / size[1]
    if width / height > target:
        crop_w, crop_h = round(height * target) // 2 * 2, height
    else:
        crop_w, crop_h = width, round(width / target) // 2 * 2
    return clip.cropped(
        x_center=width / 2, y_center=height / 2, width=crop_w, height=crop_h
    ).resized(size)


# --- the report ----------------------------------------------------------------------------


def summarise(runs: list[Run], timeline: Timeline) -> dict[str, dict[str, Any]]:
    """Per variant: median and min wall time, CPU, the worst peak RSS, load while measured."""
    summary: dict[str, dict[str, Any]] = {}
    for variant in VARIANTS:
        mine = [r for r in runs if r.variant == variant]
        if not mine:
            continue
        walls = [r.wall_s for r in mine]
        summary[variant] = {
            "runs": len(mine),
            "wall_median_s": round(statistics.median(walls), 2),
            "wall_min_s": round(min(walls), 2),
            "wall_max_s": round(max(walls), 2),
            "cpu_median_s": round(statistics.median(r.cpu_s for r in mine), 1),
            "peak_tree_rss_mib": round(max(r.peak_tree_rss_mib for r in mine)),
            "max_process_rss_mib": round(max(r.max_process_rss_mib for r in mine)),
            "load1_before": [round(r.load_before[0], 2) for r in mine],
            "others_cpu_pct_median": round(statistics.median(r.others_cpu_pct for r in mine)),
            "realtime_factor": round(statistics.median(walls) / timeline.duration, 2),
        }
    floor = summary.get("floor-lavfi", {}).get("wall_median_s")
    for row in summary.values():
        row["ratio_vs_floor"] = round(row["wall_median_s"] / floor, 2) if floor else None
    return summary


def build_report(
    args: argparse.Namespace,
    plan: BenchPlan,
    manifest: dict[str, Any],
    timeline: Timeline,
    runs: list[Run],
    summary: dict[str, dict[str, Any]],
    bench: Bench,
    moviepy_repeat: int,
) -> dict[str, Any]:
    def median(variant: str) -> float | None:
        return summary.get(variant, {}).get("wall_median_s")

    ours, lavfi = median("ours"), median("floor-lavfi")
    real, moviepy = median("floor-real"), median("moviepy")
    ours_rss = summary.get("ours", {}).get("peak_tree_rss_mib")
    ratios = {
        "ours_vs_floor_lavfi": _ratio(ours, lavfi),
        "ours_vs_floor_real": _ratio(ours, real),
        "moviepy_vs_ours": _ratio(moviepy, ours),
        "floor_real_vs_floor_lavfi": _ratio(real, lavfi),
    }
    verdicts = {
        "floor": _verdict(ratios["ours_vs_floor_lavfi"], TARGET_FLOOR_RATIO, at_most=True),
        "moviepy": _verdict(ratios["moviepy_vs_ours"], TARGET_MOVIEPY_SPEEDUP, at_most=False),
        "memory": _verdict(ours_rss, TARGET_PEAK_RSS_MIB, at_most=True),
    }
    return {
        "benchmark": "ranking_render",
        "plan": plan.name,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "repeat": args.repeat if not args.smoke else 1,
        "moviepy_repeat": moviepy_repeat,
        "timeline": {
            "duration_s": round(timeline.duration, 3),
            "segments": len(timeline.segments),
            "clip_seconds": [c["seconds"] for c in manifest["clips"]],
            "crossfade_s": timeline.crossfade,
            "size": f"{timeline.width}x{timeline.height}",
            "fps": timeline.fps,
            "encoder": asdict(timeline.encoder),
            "encoder_args": bench.encode,
        },
        "targets": {
            "ours_vs_floor_lavfi_at_most": TARGET_FLOOR_RATIO,
            "moviepy_vs_ours_at_least": TARGET_MOVIEPY_SPEEDUP,
            "ours_peak_rss_mib_at_most": TARGET_PEAK_RSS_MIB,
        },
        "summary": summary,
        "ratios": ratios,
        "verdicts": verdicts,
        "machine": _machine_info(),
        "runs": [asdict(r) for r in runs],
    }


def format_report(report: dict[str, Any]) -> str:
    s, r, v = report["summary"], report["ratios"], report["verdicts"]
    t = report["timeline"]
    m = report["machine"]
    ffmpeg = (m["ffmpeg"] or "no ffmpeg").split(" Copyright")[0]
    lines = [
        f"ranking render benchmark ({report['plan']}): {t['segments']} segments -> "
        f"{t['duration_s']:.2f} s {t['size']} {t['fps']} fps, "
        f"x264 {t['encoder']['preset']} crf {t['encoder']['crf']}",
        f"machine: {m['nproc']} CPUs ({m['cpu_model']}), {ffmpeg}, "
        f"commit {m['git_commit'][:10]}{' (render/ modified)' if m['render_dirty'] else ''}",
        "",
    ]
    header = (
        f"{'variant':<12}| {'n':>2} | {'wall median (s)':>15} | {'min':>7} | {'CPU (s)':>7} | "
        f"{'peak RSS (MiB)':>14} | {'max proc':>8} | {'ratio vs floor':>14} | "
        f"{'load1':>11} | {'others':>6}"
    )
    lines += [header, "-" * len(header)]
    for name, row in s.items():
        loads = row["load1_before"]
        load = f"{min(loads):.2f}-{max(loads):.2f}" if len(loads) > 1 else f"{loads[0]:.2f}"
        ratio = f"{row['ratio_vs_floor']:.2f}x" if row["ratio_vs_floor"] else "-"
        lines.append(
            f"{name:<12}| {row['runs']:>2} | {row['wall_median_s']:>15.2f} | "
            f"{row['wall_min_s']:>7.2f} | {row['cpu_median_s']:>7.1f} | "
            f"{row['peak_tree_rss_mib']:>14} | {row['max_process_rss_mib']:>8} | {ratio:>14} | "
            f"{load:>11} | {row['others_cpu_pct_median']:>5}%"
        )
    lines += [
        "",
        f"ours / floor (lavfi)        {_fmt_ratio(r['ours_vs_floor_lavfi'])}  "
        f"target <= {TARGET_FLOOR_RATIO}x   {v['floor']}",
        f"ours / floor (real footage) {_fmt_ratio(r['ours_vs_floor_real'])}  (information)",
        f"moviepy / ours              {_fmt_ratio(r['moviepy_vs_ours'])}  "
        f"target >= {TARGET_MOVIEPY_SPEEDUP:g}x     {v['moviepy']}",
        f"ours peak RSS (tree)        {s.get('ours', {}).get('peak_tree_rss_mib', '-'):>6} MiB "
        f"target <= {TARGET_PEAK_RSS_MIB:g} MiB {v['memory']}",
        "",
        "wall: the ffmpeg process for the floors; the timed render inside the child for ours",
        "  and moviepy (interpreter start-up and input probing excluded). peak RSS: largest",
        "  sampled sum over the process tree; max proc: wait4 ru_maxrss (largest single process).",
        "  load1: 1-min load average before each run; others: CPU used by other processes",
        "  during the run, as a share of the machine.",
        "moviepy: same timeline, no loudness normalisation, LANCZOS resize (ours: bicubic),",
        "  RGB frames piped to ffmpeg (untagged BT.601 output; ours is tagged BT.709),",
        "  threads=2; pixel aspect ignored and rotation by size swap (no input here has either).",
    ]
    versions = {x["render_sha1"] for x in report["runs"]}
    if len(versions) > 1:
        lines.append(
            f"WARNING: shorts_pipeline/render/ changed during the benchmark ({len(versions)} "
            "versions measured; see render_sha1 per run in the JSON): results mix them."
        )
    busy = [x["others_cpu_pct"] for x in report["runs"]]
    noisy = [b for b in busy if b > BUSY_WARNING_PCT]
    if noisy:
        lines.append(
            f"WARNING: in {len(noisy)} of {len(busy)} runs other processes used more than "
            f"{BUSY_WARNING_PCT}% of the CPUs (up to {max(noisy):.0f}%): those times are "
            "inflated; judge by the runs with a low 'others' (per run in the JSON)."
        )
    ours_runs = sorted(
        (x for x in report["runs"] if x["variant"] == "ours"), key=lambda x: x["wall_s"]
    )
    if ours_runs:
        median_run = ours_runs[(len(ours_runs) - 1) // 2]
        lines.append(f"ours by ffmpeg process (round {median_run['round']}, the median):")
        for p in median_run["processes"]:
            if p["what"].startswith("ffmpeg"):
                lines.append(
                    f"  {p['what']:<44} ~{p['last_s'] - p['first_s']:5.1f} s wall "
                    f"{p['cpu_s']:5.1f} s CPU {p['peak_rss_mib']:5.0f} MiB"
                )
    outputs = {x["variant"]: x["output"] for x in report["runs"] if x["output"]}
    for name, out in outputs.items():
        video = out.get("video", {})
        lines.append(
            f"output {name:<12} {video.get('width')}x{video.get('height')} "
            f"{video.get('profile')} {video.get('pix_fmt')} {out['duration_s']:.2f} s "
            f"{video.get('frames')} frames {out['bit_rate_kbps']} kb/s"
        )
    return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def _fmt_ratio(value: float | None) -> str:
    return f"{value:5.2f}x" if value is not None else "  n/a "


def _verdict(value: float | None, target: float, *, at_most: bool) -> str:
    if value is None:
        return "n/a"
    return "PASS" if (value <= target if at_most else value >= target) else "MISS"


def _machine_info() -> dict[str, Any]:
    def run(*cmd: str) -> str:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_DIR, check=False)
        except OSError:
            return ""
        return proc.stdout.strip()

    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    render_dir = REPO_DIR / "shorts_pipeline" / "render"
    try:
        moviepy_version = metadata.version("moviepy")
    except metadata.PackageNotFoundError:
        moviepy_version = None
    return {
        "nproc": _cpu_count(),
        "cpu_model": cpu_model,
        "mem_total_mib": os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // MIB,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ffmpeg": run("ffmpeg", "-version").splitlines()[0] if shutil.which("ffmpeg") else None,
        "moviepy": moviepy_version,
        "git_commit": run("git", "rev-parse", "HEAD") or "unknown",
        # The benchmark measures the working tree: say whether render/ differs from the commit.
        "render_dirty": bool(run("git", "status", "--porcelain", "--", str(render_dir))),
        "render_sources_sha1": render_sources_sha1(),
        "load_at_report": [round(x, 2) for x in os.getloadavg()],
    }


def render_sources_sha1() -> str:
    """One hash of the engine's sources: the benchmark measures the working tree, which may
    change between runs while someone works on it."""
    digest = hashlib.sha1()
    for path in sorted((REPO_DIR / "shorts_pipeline" / "render").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the ranking render against the encode floors and MoviePy 2."
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds of measurements (3)")
    parser.add_argument(
        "--moviepy-repeat",
        type=int,
        default=None,
        help="rounds that include MoviePy (default: all); MoviePy takes minutes per run",
    )
    parser.add_argument("--skip-moviepy", action="store_true", help="do not run MoviePy")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="2 small clips into a 3.6 s video, once, MoviePy included: for CI, under a minute",
    )
    parser.add_argument("--json", metavar="PATH", help="write every measurement as JSON")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE), help="inputs and outputs")
    parser.add_argument(
        "--keep", action="store_true", help="keep this run's outputs, logs and cards"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=None,
        help="before each run, wait up to this many seconds for other processes to go "
        "quiet (default 30; 0 with --smoke)",
    )
    parser.add_argument("--child", choices=("ours", "moviepy"), help=argparse.SUPPRESS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


if __name__ == "__main__":
    sys.exit(main())
