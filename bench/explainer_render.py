"""Benchmark of issue 4: a 60 s Korean explainer with 8 scenes, rendered end to end offline.

A Korean source text (three sections about cutting the electricity bill at home) is
registered as an explainer project in a fresh SHORTS_HOME and materialised through the real
Dagster assets (search_results, selections, script, narration, slides, video, upload) with
the offline writer, espeak-ng, Pillow, libass and ffmpeg; no network. Each round runs:

- floor-lavfi  ffmpeg encoding a 1080x1920 30 fps `testsrc2` source (plus a sine) of the
               video's length with the engine's own encoder arguments: the pure-encode floor.
- cold         the whole graph in a fresh home: the TTS cache is empty, so the narration
               stage synthesises every scene (the bundled music bed is made first and timed
               on its own: it is made once per home, not per video).
- warm         the same project re-run in the same home: every scene is a TTS cache hit.
- floor-real   the same encoder arguments on our output's own frames (decoded to raw video
               before the clock starts): slides encode dearer than synthetic lavfi frames.

Per stage, the wall time of each Dagster step comes from the run's event log (STEP_START to
STEP_SUCCESS); the ffmpeg render itself is the video asset's `render_s` metadata. Each run is
a fresh child process, measured from outside (wall, CPU, peak RSS of the process tree, the
load and the CPU other processes used meanwhile), with conventions and helpers shared with
bench/ranking_render.py.

    uv run python bench/explainer_render.py                # the full benchmark (~10 min)
    uv run python bench/explainer_render.py --smoke        # CI: 2 scenes, ~6 s, < 60 s
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Helpers shared with the ranking benchmark (bench/ is on sys.path when this runs as a script).
from ranking_render import (
    BUSY_WARNING_PCT,
    MIB,
    QUIET_CORES,
    TreeSampler,
    _cpu_count,
    _cpu_times,
    _describe_output,
    _machine_info,
    _write_json,
    render_sources_sha1,
)

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_CACHE = BENCH_DIR / ".cache"

QUIET_WINDOWS = 3  # settle: this many quiet 1 s windows in a row (tests here run in bursts)
STEPS = ("search_results", "selections", "script", "narration", "slides", "video", "upload")
PHASES = ("cold", "warm")
FLOORS = ("floor-lavfi", "floor-real")

# Three sections, six paragraphs, twelve sentences of plain Korean prose. The offline writer
# makes one scene of each paragraph (its lead sentence, and the second one while the target
# length allows), plus the title as the intro and its outro: 8 scenes.
KO_TITLE = "전기요금, 이렇게 줄이세요"
KO_TEXT = """# 대기전력부터 잡으세요

플러그를 꽂아 둔 가전제품은 꺼져 있어도 조금씩 전기를 씁니다. 이런 대기전력이 가정 \
전기요금의 육 퍼센트 정도를 차지합니다.

스위치가 달린 멀티탭을 쓰면 여러 기기의 전원을 한 번에 끊을 수 있습니다. 외출하거나 잠들기 \
전에 스위치를 끄는 습관을 들여 보세요.

# 에어컨과 냉장고

에어컨은 자주 켜고 끄는 것보다 적정 온도로 계속 켜 두는 편이 전기를 덜 씁니다. 실내 온도는 \
이십육 도에 맞추고 선풍기를 함께 돌려 보세요.

냉장고는 칠십 퍼센트 정도만 채워야 찬 공기가 잘 돕니다. 뜨거운 음식은 식힌 뒤에 넣어 주세요.

# 요금과 습관 점검

가정용 전기요금은 누진제라서 사용량이 구간을 넘으면 단가가 크게 오릅니다. 한전 앱에서 이번 \
달 사용량을 수시로 확인하세요.

조명은 엘이디로 바꾸고, 빨래는 모아서 한 번에 돌리세요. 작은 습관이 모이면 한 달에 만 원 \
이상 아낄 수 있습니다.
"""

KO_SMOKE_TEXT = """# 대기전력

대기전력은 멀티탭 스위치로 끄세요.
"""


@dataclass(frozen=True)
class Plan:
    name: str
    title: str
    text: str
    target_seconds: float  # the offline writer's target; tuned so the video lands at ~57 s
    max_scenes: int
    max_chapters: int
    expect_scenes: int
    expect_seconds: tuple[float, float]  # the video's length should fall in this range
    max_duration: float = 60.0  # the project's platform limit (Shorts: 60 s)

    def settings(self) -> Any:
        from shorts_pipeline.models import ProjectSettings, ScriptSettings

        # Slides only: the demo library's clips are tagged in English, so the Korean scenes'
        # b-roll keywords would match none of them; b-roll off says so instead of searching.
        return ProjectSettings(
            language="ko",
            broll=False,
            max_duration=self.max_duration,
            script=ScriptSettings(
                target_seconds=self.target_seconds,
                max_scenes=self.max_scenes,
                max_chapters=self.max_chapters,
            ),
        )


FULL_PLAN = Plan("full", KO_TITLE, KO_TEXT, 50.0, 8, 3, 8, (55.0, 60.0))
SMOKE_PLAN = Plan("smoke", KO_TITLE, KO_SMOKE_TEXT, 5.0, 2, 1, 2, (3.0, 12.0))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.child:
        return _run_child(args)

    plan = SMOKE_PLAN if args.smoke else FULL_PLAN
    repeat = 1 if args.smoke else args.repeat
    settle = args.settle if args.settle is not None else (0.0 if args.smoke else 30.0)
    cache = Path(args.cache).resolve()
    run_dir = cache / f"explainer-{plan.name}" / f"run-{os.getpid()}"
    # B-roll is off (see Plan.settings), so search_results never reads the library; the full
    # run still points the resource at the demo library, the smoke run (CI: seconds, not the
    # minutes the 4K demo clip takes to synthesise) at an empty folder.
    library = cache / ("demo-library" if not args.smoke else "empty-library")
    print(f"library {library} ...", flush=True)
    library.mkdir(parents=True, exist_ok=True)
    if not args.smoke:
        from shorts_pipeline.render.synth import make_demo_library

        make_demo_library(library)  # cached: only a changed recipe is synthesised again

    bench = Bench(plan, run_dir, library, settle)
    runs: list[Run] = []
    try:
        for round_no in range(1, repeat + 1):
            home = run_dir / f"home-{round_no}"
            key = None
            for phase in PHASES:
                run = bench.measure_pipeline(phase, round_no, home, key)
                key = run.child["project_key"]
                runs.append(run)
                _print_run(run, repeat)
                _check_run(run, plan)
            for variant in FLOORS:
                run = bench.measure_floor(variant, round_no)
                runs.append(run)
                _print_run(run, repeat)
            if not args.keep:
                shutil.rmtree(home / "media", ignore_errors=True)  # the home's videos: 10s of MB
    finally:
        bench.cleanup(keep=args.keep)

    summary = summarise(runs)
    report = build_report(args, plan, runs, summary, bench, repeat, settle)
    print()
    print(format_report(report))
    if args.json:
        _write_json(Path(args.json), report)
        print(f"\nresults written to {args.json}")
    return 0


# --- measuring -----------------------------------------------------------------------------


@dataclass
class Run:
    variant: str  # cold, warm, floor-lavfi or floor-real
    round: int
    wall_s: float  # child process, spawn to exit (the pipeline's child includes imports)
    cpu_s: float  # user + system of the child and every descendant it reaped (wait4)
    peak_tree_rss_mib: float  # largest sum of RSS over the live process tree, sampled
    max_process_rss_mib: float  # wait4's ru_maxrss: the largest single process
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    others_cpu_s: float  # CPU busy time on the machine not spent by our tree (approximate)
    others_cpu_pct: float  # others_cpu_s as a share of the machine's capacity
    others_top: list[str]
    steal_s: float
    settle_wait_s: float
    settle_busy_cores: float | None
    render_sha1: str  # hash of shorts_pipeline/render/*.py when the run started
    processes: list[dict[str, Any]] = field(default_factory=list)
    child: dict[str, Any] = field(default_factory=dict)  # the pipeline child's own report
    output: dict[str, Any] = field(default_factory=dict)


class Bench:
    def __init__(self, plan: Plan, run_dir: Path, library: Path, settle: float) -> None:
        self.plan = plan
        self.run_dir = run_dir
        self.library = library
        self.settle = settle
        self.log_dir = run_dir / "logs"
        self.out_dir = run_dir / "out"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.raw_frames = run_dir / "tmp" / "ours-frames.yuv"
        self.ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
        self.ours: Path | None = None  # round 1's warm output, the floors' reference
        self.duration: float | None = None  # the timeline's length, which the floors encode
        self.encode: list[str] = []

    def measure_pipeline(self, phase: str, round_no: int, home: Path, key: str | None) -> Run:
        result = self.out_dir / f".{phase}-{round_no}.result.json"
        result.unlink(missing_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", phase]
        cmd += ["--plan", self.plan.name, "--library", str(self.library), "--result", str(result)]
        if key:
            cmd += ["--key", key]
        env = {**os.environ, "SHORTS_HOME": str(home)}
        for name in ("SHORTS_CATALOG_URL", "SHORTS_MEDIA_URL", "SHORTS_LIBRARY", "DAGSTER_HOME"):
            env.pop(name, None)  # everything lives in the fresh home
        run = self._measure(phase, round_no, cmd, env, self.log_dir / f"{phase}-{round_no}.log")
        run.child = json.loads(result.read_text())
        if not run.child.get("success"):
            raise SystemExit(f"{phase} run failed: {run.child.get('failure')}")
        if self.ours is None:
            # The floors' reference: the first output (cold and warm render the same frames;
            # kept: the home's copy is overwritten later).
            self.ours = self.out_dir / "ours.mp4"
            shutil.copyfile(run.child["video_path"], self.ours)
            # The floors encode as many frames as we rendered (the container's duration
            # may be longer by the AAC stream's padding).
            frames = _describe_output(self.ours)["video"]["frames"]
            self.duration = round(frames / 30, 3)
            self.encode = encoder_args(self.duration)
        if round_no == 1:
            run.output = _describe_output(Path(run.child["video_path"]))
        return run

    def measure_floor(self, variant: str, round_no: int) -> Run:
        assert self.ours is not None and self.duration is not None
        out = self.out_dir / f"{variant}.mp4"
        ffmpeg = [self.ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
        if variant == "floor-lavfi":
            source = [
                *("-f", "lavfi", "-i", "testsrc2=s=1080x1920:r=30"),
                *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
            ]
        else:
            if not self.raw_frames.exists():
                self._decode_raw_frames(self.ours)
            source = [
                *("-f", "rawvideo", "-pix_fmt", "yuv420p", "-video_size", "1080x1920"),
                *("-framerate", "30", "-i", str(self.raw_frames), "-i", str(self.ours)),
            ]
        cmd = [*ffmpeg, *source, "-map", "0:v", "-map", "1:a", *self.encode, str(out)]
        log = self.log_dir / f"{variant}-{round_no}.log"
        run = self._measure(variant, round_no, cmd, dict(os.environ), log)
        if round_no == 1:
            run.output = _describe_output(out)
        return run

    def cleanup(self, keep: bool) -> None:
        # Raw 1080x1920 frames take 3 MB each (5.6 GB for 60 s): never keep them.
        self.raw_frames.unlink(missing_ok=True)
        if keep:
            print(f"homes, outputs and logs kept in {self.run_dir}")
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _measure(
        self, variant: str, round_no: int, cmd: list[str], env: dict[str, str], log: Path
    ) -> Run:
        return measure_process(variant, round_no, cmd, env, log, self.settle)

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


def measure_process(
    variant: str, round_no: int, cmd: list[str], env: dict[str, str], log: Path, settle: float
) -> Run:
    """Run `cmd` as a fresh child once the machine is quiet (up to `settle` s), measured from
    outside: wall, CPU of the tree (wait4), its peak RSS (sampled), load and the CPU other
    processes used meanwhile. Exits with the log's tail if the child fails."""
    waited, busy = _wait_for_quiet(settle)
    render_sha1 = render_sources_sha1()
    load_before = os.getloadavg()
    cpu_before = _cpu_times()
    with log.open("wb") as log_file:
        started = time.perf_counter()
        # The spawn time, for a child that splits its own wall time (bench/pipeline_bench.py).
        env = {**env, "BENCH_SPAWNED_AT": f"{time.time():.6f}"}
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env
        )
        sampler = TreeSampler(proc.pid, started)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        sampler.stop()
    cpu_after = _cpu_times()
    load_after = os.getloadavg()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{variant} failed (exit {code}); {log}:\n{tail}")
    cpu = usage.ru_utime + usage.ru_stime
    others = max(0.0, cpu_after.busy - cpu_before.busy - cpu)
    return Run(
        variant=variant,
        round=round_no,
        wall_s=wall,
        cpu_s=cpu,
        peak_tree_rss_mib=sampler.peak_bytes / MIB,
        max_process_rss_mib=usage.ru_maxrss / 1024,  # KiB on Linux
        load_before=load_before,
        load_after=load_after,
        others_cpu_s=others,
        others_cpu_pct=100 * others / (wall * _cpu_count()),
        others_top=sampler.others_top(),
        steal_s=cpu_after.steal - cpu_before.steal,
        settle_wait_s=waited,
        settle_busy_cores=busy,
        render_sha1=render_sha1,
        processes=sampler.processes(),
    )


def _wait_for_quiet(max_wait: float) -> tuple[float, float | None]:
    """Wait (up to `max_wait` s) until other processes kept fewer than QUIET_CORES busy for
    QUIET_WINDOWS 1 s windows in a row. Returns the seconds waited and the busiest of those
    last windows (None when not looked). Stricter than ranking_render's single window: test
    suites on this machine pause for a second between files."""
    if max_wait <= 0:
        return 0.0, None
    started = time.monotonic()
    recent: list[float] = []
    while True:
        before = _cpu_times().busy
        time.sleep(1.0)
        recent = [*recent, _cpu_times().busy - before][-QUIET_WINDOWS:]
        waited = time.monotonic() - started
        quiet = len(recent) == QUIET_WINDOWS and max(recent) < QUIET_CORES
        if quiet or waited >= max_wait:
            return round(waited, 1), round(max(recent), 2)


def encoder_args(seconds: float) -> list[str]:
    """The engine's own output arguments for a video of `seconds` (codec, preset, CRF, High
    profile, yuv420p, GOP, BT.709 tags, AAC 48 kHz stereo, +faststart, -t)."""
    from shorts_pipeline.render.timeline import FilterGraph, StillSegment, Timeline

    return FilterGraph(Timeline(segments=[StillSegment("unused.png", seconds)])).encode_args()


def _print_run(run: Run, repeat: int) -> None:
    extra = ""
    if run.child:
        c = run.child
        extra = (
            f" | steps {c['steps_total_s']:6.2f} s, render {c['render_s']:6.2f} s, "
            f"narration {c['steps']['narration']:5.2f} s "
            f"({c['tts_cache_hits']}/{c['scenes']} cached), video {c['video_duration_s']:.2f} s"
        )
    busy = f" ({', '.join(run.others_top[:2])})" if run.others_cpu_pct > BUSY_WARNING_PCT else ""
    print(
        f"  round {run.round}/{repeat} {run.variant:<11} {run.wall_s:7.2f} s wall "
        f"{run.cpu_s:6.1f} s CPU {run.peak_tree_rss_mib:5.0f} MiB load {run.load_before[0]:.2f} "
        f"others {run.others_cpu_pct:3.0f}%{busy}{extra}",
        flush=True,
    )


def _check_run(run: Run, plan: Plan) -> None:
    """What must hold whatever the machine: scene count, cache behaviour, passing checks.
    The video's length is warned about, not asserted (espeak-ng versions speak differently)."""
    c = run.child
    problems = []
    if c["scenes"] != plan.expect_scenes:
        problems.append(f"{c['scenes']} scenes, expected {plan.expect_scenes}")
    expected_hits = 0 if run.variant == "cold" else c["scenes"]
    if c["tts_cache_hits"] != expected_hits:
        problems.append(f"{c['tts_cache_hits']} TTS cache hits, expected {expected_hits}")
    failed = c.get("blocking_checks_failed", [])
    if failed or not c["checks"]:
        problems.append(f"blocking asset checks failed or none ran: {failed or c['checks']}")
    if problems:
        raise SystemExit(f"{run.variant} run {run.round}: " + "; ".join(problems))
    low, high = plan.expect_seconds
    if not low <= c["video_duration_s"] <= high:
        print(
            f"  NOTE: the video runs {c['video_duration_s']:.2f} s, outside {low:g}-{high:g} s: "
            "tune Plan.target_seconds",
            flush=True,
        )


# --- the child: one materialisation of the whole graph ---------------------------------------


def _run_child(args: argparse.Namespace) -> int:
    """Register (cold) and materialise the project in SHORTS_HOME; report what the run's
    event log and assets say. Imports happen before any clock starts."""
    imported = time.perf_counter()
    import dagster as dg

    from shorts_pipeline.assets import production_assets
    from shorts_pipeline.assets.video import _music_path
    from shorts_pipeline.definitions import defs
    from shorts_pipeline.resources.catalog import CatalogResource
    from shorts_pipeline.resources.clip_sources import LocalLibrarySource
    from shorts_pipeline.resources.media_store import MediaStoreResource

    plan = SMOKE_PLAN if args.plan == "smoke" else FULL_PLAN
    report: dict[str, Any] = {"imports_s": round(time.perf_counter() - imported, 3)}
    catalog = CatalogResource()
    media_store = MediaStoreResource()
    if args.child == "cold":
        started = time.perf_counter()
        spec = catalog.add_project(
            plan.title, "explainer", settings=plan.settings(), source_text=plan.text
        )
        report["register_s"] = round(time.perf_counter() - started, 3)
        # The bundled music bed is synthesised once per home, inside the first video step:
        # made here, timed on its own, so the cold run differs from the warm one by TTS only.
        started = time.perf_counter()
        _music_path(spec.settings)
        report["music_bed_s"] = round(time.perf_counter() - started, 3)
        key = spec.key
    else:
        key = args.key
    # The code location's own resources (a resource a new stage needs comes with them), with
    # this benchmark's library.
    resources = {
        **defs.resources,
        "catalog": catalog,
        "media_store": media_store,
        "library": LocalLibrarySource(directory=args.library),
    }
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("project", [key])
    started = time.perf_counter()
    result = dg.materialize(
        production_assets,
        partition_key=key,
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    report["materialize_s"] = round(time.perf_counter() - started, 3)
    report["project_key"] = key
    report["success"] = result.success
    usage_self = resource.getrusage(resource.RUSAGE_SELF)
    usage_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    report["python_maxrss_mib"] = round(usage_self.ru_maxrss / 1024, 1)
    report["children_maxrss_mib"] = round(usage_children.ru_maxrss / 1024, 1)
    if not result.success:
        failures = [e for e in result.all_events if e.is_step_failure]
        report["failure"] = [f"{e.step_key}: {e.step_failure_data}" for e in failures]
        Path(args.result).write_text(json.dumps(report, indent=2, ensure_ascii=False))
        return 0

    report["steps"] = _step_seconds(instance, result.run_id)
    report["steps_total_s"] = round(sum(report["steps"].values()), 3)
    report["dagster_overhead_s"] = round(report["materialize_s"] - report["steps_total_s"], 3)
    script = result.output_for_node("script")
    narration = result.output_for_node("narration")
    video = result.output_for_node("video")
    meta = {
        node: next(iter(result.asset_materializations_for_node(node))).metadata
        for node in ("narration", "slides", "video")
    }
    report["render_s"] = float(meta["video"]["render_s"].value)
    report["render_seconds_record"] = video.render_seconds
    report["video_minus_render_s"] = round(report["steps"]["video"] - report["render_s"], 3)
    report["video_duration_s"] = round(video.duration, 3)
    report["video_path"] = str(media_store.local_path(video.media_key))
    report["video_size_mib"] = round(video.size_bytes / MIB, 2)
    report["loudness_lufs"] = video.loudness_lufs
    report["realtime_factor"] = round(video.duration / report["render_s"], 3)
    evaluations = result.get_asset_check_evaluations()
    report["checks"] = {c.check_name: c.passed for c in evaluations}
    report["blocking_checks_failed"] = [
        c.check_name for c in evaluations if not c.passed and c.severity.value == "ERROR"
    ]
    report["scenes"] = len(script.scenes())
    report["chapters"] = len(script.chapters)
    report["tts_cache_hits"] = int(meta["narration"]["cache_hits"].value)
    report["speech_s"] = narration.duration
    report["scene_speech_s"] = [s.duration for s in narration.scenes]
    report["slides"] = int(meta["slides"]["images"].value)
    report["subtitle_cues"] = int(meta["video"]["subtitle_cues"].value)
    report["script"] = [
        {"chapter": ch.title, "role": sc.role, "narration": sc.narration}
        for _, ch, sc in script.scene_chapters()
    ]
    Path(args.result).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


def _step_seconds(instance: Any, run_id: str) -> dict[str, float]:
    """Wall seconds of each step, STEP_START to STEP_SUCCESS, from the run's event log."""
    starts: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS":
            seconds[event.step_key] = round(entry.timestamp - starts[event.step_key], 3)
    missing = [s for s in STEPS if s not in seconds]
    if missing:
        raise SystemExit(f"no STEP_SUCCESS in the event log for {missing}")
    return {step: seconds[step] for step in STEPS}


# --- the report ----------------------------------------------------------------------------


def summarise(runs: list[Run]) -> dict[str, Any]:
    def med(values: Sequence[float]) -> float:
        return round(statistics.median(values), 3)

    summary: dict[str, Any] = {}
    for variant in (*PHASES, *FLOORS):
        mine = [r for r in runs if r.variant == variant]
        if not mine:
            continue
        row: dict[str, Any] = {
            "runs": len(mine),
            "wall_median_s": med([r.wall_s for r in mine]),
            "wall_min_s": round(min(r.wall_s for r in mine), 3),
            "wall_max_s": round(max(r.wall_s for r in mine), 3),
            "cpu_median_s": round(statistics.median(r.cpu_s for r in mine), 1),
            "peak_tree_rss_mib": round(max(r.peak_tree_rss_mib for r in mine)),
            "max_process_rss_mib": round(max(r.max_process_rss_mib for r in mine)),
            "load1_before": [round(r.load_before[0], 2) for r in mine],
            "others_cpu_pct": [round(r.others_cpu_pct, 1) for r in mine],
        }
        if variant in PHASES:
            children = [r.child for r in mine]
            row["steps_median_s"] = {s: med([c["steps"][s] for c in children]) for s in STEPS}
            for name in (
                "steps_total_s",
                "materialize_s",
                "dagster_overhead_s",
                "render_s",
                "video_minus_render_s",
                "imports_s",
                "video_duration_s",
                "realtime_factor",
                "python_maxrss_mib",
                "children_maxrss_mib",
            ):
                row[f"{name}_median"] = med([c[name] for c in children])
            row["render_min_s"] = round(min(c["render_s"] for c in children), 3)
            row["tts_cache_hits"] = [c["tts_cache_hits"] for c in children]
            if variant == "cold":
                row["register_s_median"] = med([c["register_s"] for c in children])
                row["music_bed_s_median"] = med([c["music_bed_s"] for c in children])
        summary[variant] = row

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a and b else None

    lavfi = summary.get("floor-lavfi", {}).get("wall_median_s")
    real = summary.get("floor-real", {}).get("wall_median_s")
    renders = [r.child["render_s"] for r in runs if r.variant in PHASES]
    render = round(statistics.median(renders), 3) if renders else None
    duration = summary.get("warm", {}).get("video_duration_s_median")
    ratios: dict[str, Any] = {
        "render_median_s": render,
        "render_vs_floor_lavfi": ratio(render, lavfi),
        "render_vs_floor_real": ratio(render, real),
        "floor_real_vs_floor_lavfi": ratio(real, lavfi),
        "realtime_factor": ratio(duration, render),
    }
    for phase in PHASES:
        row = summary.get(phase)
        if row:
            ratios[f"{phase}_render_vs_floor_lavfi"] = ratio(row["render_s_median"], lavfi)
            ratios[f"{phase}_render_vs_floor_real"] = ratio(row["render_s_median"], real)
            ratios[f"{phase}_steps_vs_floor_lavfi"] = ratio(row["steps_total_s_median"], lavfi)
            ratios[f"{phase}_steps_vs_duration"] = ratio(row["steps_total_s_median"], duration)
    summary["ratios"] = ratios
    return summary


def build_report(
    args: argparse.Namespace,
    plan: Plan,
    runs: list[Run],
    summary: dict[str, Any],
    bench: Bench,
    repeat: int,
    settle: float,
) -> dict[str, Any]:
    first = next(r.child for r in runs if r.variant == "cold")
    machine = _machine_info()
    machine.pop("moviepy", None)
    machine["espeak_ng"] = _first_line("espeak-ng", "--version")
    return {
        "benchmark": "explainer_render",
        "plan": plan.name,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "repeat": repeat,
        "settle_s": settle,
        "project": {
            "title": plan.title,
            "language": "ko",
            "settings": json.loads(plan.settings().model_dump_json()),
            "source_text": plan.text,
            "scenes": first["scenes"],
            "chapters": first["chapters"],
            "slides": first["slides"],
            "subtitle_cues": first["subtitle_cues"],
            "speech_s": first["speech_s"],
            "scene_speech_s": first["scene_speech_s"],
            "video_duration_s": first["video_duration_s"],
            "floor_seconds": bench.duration,
            "script": first["script"],
        },
        "encoder_args": bench.encode,
        "summary": summary,
        "machine": machine,
        "runs": [asdict(r) for r in runs],
    }


def format_report(report: dict[str, Any]) -> str:
    s, p, m = report["summary"], report["project"], report["machine"]
    r = s["ratios"]
    cold, warm = s.get("cold", {}), s.get("warm", {})
    ffmpeg = (m["ffmpeg"] or "no ffmpeg").split(" Copyright")[0]
    lines = [
        f"explainer benchmark ({report['plan']}): {p['scenes']} scenes in {p['chapters']} "
        f"chapters, {p['video_duration_s']:.2f} s 1080x1920 30 fps, Korean, espeak-ng, "
        f"{p['slides']} slides, {p['subtitle_cues']} subtitle cues; {report['repeat']} rounds",
        f"machine: {m['nproc']} CPUs ({m['cpu_model']}), {ffmpeg}, "
        f"commit {m['git_commit'][:10]}{' (render/ modified)' if m['render_dirty'] else ''}",
        "",
        f"{'stage (median s)':<30}| {'cold':>8} | {'warm':>8}",
        "-" * 52,
    ]

    def row(label: str, a: Any, b: Any, fmt: str = "8.2f") -> None:
        def cell(v: Any) -> str:
            return f"{v:{fmt}}" if isinstance(v, int | float) else f"{v or '-':>8}"

        lines.append(f"{label:<30}| {cell(a)} | {cell(b)}")

    row("register project", cold.get("register_s_median"), None)
    row("music bed (once per home)", cold.get("music_bed_s_median"), None)
    for step in STEPS:
        row(f"  {step}", cold["steps_median_s"][step], warm["steps_median_s"][step])
        if step == "video":
            row("    render (render_s)", cold["render_s_median"], warm["render_s_median"])
            row(
                "    video - render",
                cold["video_minus_render_s_median"],
                warm["video_minus_render_s_median"],
            )
    row("steps total", cold["steps_total_s_median"], warm["steps_total_s_median"])
    row("materialize() call", cold["materialize_s_median"], warm["materialize_s_median"])
    row(
        "  Dagster outside steps",
        cold["dagster_overhead_s_median"],
        warm["dagster_overhead_s_median"],
    )
    row("child process (+imports)", cold["wall_median_s"], warm["wall_median_s"])
    row("  of which imports", cold["imports_s_median"], warm["imports_s_median"])
    row("CPU of the child tree", cold["cpu_median_s"], warm["cpu_median_s"], "8.1f")
    row("TTS cache hits", _hits(cold), _hits(warm))
    row("peak RSS, tree (MiB)", cold["peak_tree_rss_mib"], warm["peak_tree_rss_mib"], "8.0f")
    row(
        "maxrss python (MiB)",
        cold["python_maxrss_mib_median"],
        warm["python_maxrss_mib_median"],
        "8.0f",
    )
    row(
        "maxrss ffmpeg (MiB)",
        cold["children_maxrss_mib_median"],
        warm["children_maxrss_mib_median"],
        "8.0f",
    )
    row("load1 before", _range(cold["load1_before"]), _range(warm["load1_before"]))
    row("others' CPU", _pct(cold["others_cpu_pct"]), _pct(warm["others_cpu_pct"]))
    lines += [
        "",
        f"{'floor':<12}| {'n':>2} | {'wall median (s)':>15} | {'min':>7} | {'CPU (s)':>7} | "
        f"{'peak RSS (MiB)':>14} | {'load1':>11} | {'others':>8}",
        "-" * 95,
    ]
    for name in FLOORS:
        f = s.get(name)
        if f:
            lines.append(
                f"{name:<12}| {f['runs']:>2} | {f['wall_median_s']:>15.2f} | "
                f"{f['wall_min_s']:>7.2f} | {f['cpu_median_s']:>7.1f} | "
                f"{f['peak_tree_rss_mib']:>14} | {_range(f['load1_before']):>11} | "
                f"{_pct(f['others_cpu_pct']):>8}"
            )
    lines += [
        "",
        f"render median (cold + warm)    {r['render_median_s']:7.2f} s for "
        f"{p['video_duration_s']:.2f} s of video: {r['realtime_factor']:.2f}x realtime",
        f"render / floor (lavfi)         {_x(r['render_vs_floor_lavfi'])}  "
        f"(cold {_x(r.get('cold_render_vs_floor_lavfi'))}, warm "
        f"{_x(r.get('warm_render_vs_floor_lavfi'))})",
        f"render / floor (re-encode)     {_x(r['render_vs_floor_real'])}  "
        f"(cold {_x(r.get('cold_render_vs_floor_real'))}, warm "
        f"{_x(r.get('warm_render_vs_floor_real'))})",
        f"floor-real / floor-lavfi       {_x(r['floor_real_vs_floor_lavfi'])}",
        f"all steps / floor (lavfi)      cold {_x(r.get('cold_steps_vs_floor_lavfi'))}, "
        f"warm {_x(r.get('warm_steps_vs_floor_lavfi'))}; all steps / video length: cold "
        f"{_x(r.get('cold_steps_vs_duration'))}, warm {_x(r.get('warm_steps_vs_duration'))}",
        "",
        "stages: STEP_START to STEP_SUCCESS in the run's event log; render: the video asset's",
        "  render_s (voice measurement, audio mix + loudness, the one-graph render, thumbnail);",
        "  video - render: timeline, subtitles, checking the output (ffprobe, loudness), store.",
        "  child process: spawn to exit, interpreter start-up and imports included.",
        "  peak RSS, tree: largest sampled sum over the process tree; maxrss: getrusage in the",
        "  child (python: itself, espeak-ng runs in it; ffmpeg: the largest child process).",
        "floors: the ffmpeg process, with the render's encoder arguments, for the same length.",
    ]
    versions = {x["render_sha1"] for x in report["runs"]}
    if len(versions) > 1:
        lines.append(
            f"WARNING: shorts_pipeline/render/ changed during the benchmark ({len(versions)} "
            "versions measured; see render_sha1 per run in the JSON): results mix them."
        )
    noisy = [x["others_cpu_pct"] for x in report["runs"] if x["others_cpu_pct"] > BUSY_WARNING_PCT]
    if noisy:
        lines.append(
            f"WARNING: in {len(noisy)} of {len(report['runs'])} runs other processes used more "
            f"than {BUSY_WARNING_PCT}% of the CPUs (up to {max(noisy):.0f}%): those times are "
            "inflated; judge by the runs with a low 'others' (per run in the JSON)."
        )
    warm_runs = sorted(
        (x for x in report["runs"] if x["variant"] == "warm"), key=lambda x: x["wall_s"]
    )
    if warm_runs:
        median_run = warm_runs[(len(warm_runs) - 1) // 2]
        lines.append(f"warm run by process (round {median_run['round']}, the median):")
        for proc in median_run["processes"]:
            if proc["cpu_s"] >= 0.2 or "ffmpeg" in proc["what"]:
                lines.append(
                    f"  {proc['what'][:44]:<44} ~{proc['last_s'] - proc['first_s']:5.1f} s wall "
                    f"{proc['cpu_s']:5.1f} s CPU {proc['peak_rss_mib']:5.0f} MiB"
                )
    for x in report["runs"]:
        out = x["output"]
        if out:
            video = out.get("video", {})
            lines.append(
                f"output {x['variant']:<12} {video.get('width')}x{video.get('height')} "
                f"{video.get('profile')} {video.get('pix_fmt')} {out['duration_s']:.2f} s "
                f"{video.get('frames')} frames {out['bit_rate_kbps']} kb/s"
            )
    return "\n".join(lines)


def _hits(row: dict[str, Any]) -> str:
    hits = row.get("tts_cache_hits") or []
    return ",".join(str(h) for h in hits) or "-"


def _range(values: Sequence[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def _pct(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.0f}% med" if values else "-"


def _x(value: float | None) -> str:
    return f"{value:5.2f}x" if value is not None else "  n/a "


def _first_line(*cmd: str) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0] if text else None


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark a 60 s Korean explainer end to end against the encode floors."
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds of measurements (3)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="2 scenes into ~6 s, one round, no times asserted: for CI, under a minute",
    )
    parser.add_argument("--json", metavar="PATH", help="write every measurement as JSON")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE), help="library, homes, outputs")
    parser.add_argument("--keep", action="store_true", help="keep the homes, outputs and logs")
    parser.add_argument(
        "--settle",
        type=float,
        default=None,
        help="before each run, wait up to this many seconds for other processes to go "
        "quiet (default 30; 0 with --smoke)",
    )
    parser.add_argument("--child", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    parser.add_argument("--library", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


if __name__ == "__main__":
    sys.exit(main())
