"""The benchmark command (issue 8): one run, one table of ratios against the targets, and JSON.

Measured side by side in one run on this machine, each figure the median of several runs
that alternate with the runs they are compared to (floor, ours, floor, ours, ...):

- ranking     the ranking render (5 mixed clips, one 4K HEVC, -> 28 s) against the
              pure-encode floor (ffmpeg encoding a 1080x1920 30 fps lavfi source of the same
              length with the same encoder arguments) and against MoviePy 2 making the same
              video from the same inputs (bench/ranking_render.py's variants);
- explainer   the render of a 60 s, 8-scene Korean explainer (the whole graph in a fresh
              home; its `video` asset's render time) against its floor (bench/explainer_render.py);
- project     one ranking project through `shorts run` (all stages, offline providers): its
              wall time and the share spent outside ffmpeg/ffprobe processes (orchestration);
- cached      `shorts run` again on the same unchanged project, per stage;
- batches     N = 1, 4, 16 projects through Dagster runs on one instance, one by one and with
              2 runs at once: throughput (videos/minute) and the speed-up;
- memory      the ranking render's peak RSS (process tree) for 15, 60 and 180 s outputs.

Every run is a fresh child process measured from outside (wall, CPU, peak RSS of the process
tree, and the CPU *other* processes used meanwhile: the `others` column); before each, the
command waits (up to --settle s) for the machine to go quiet. See bench/README.md.

    uv run --group bench python bench/run.py --json bench/results/bench.json   # ~40 min
    uv run --group bench python bench/run.py --smoke      # CI: tiny, no times asserted
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

# bench/ is on sys.path when this runs as a script: the two render benchmarks supply the
# variants and the measuring machinery.
import explainer_render as er
import pipeline_bench as pb
import ranking_render as rr

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
SECTIONS = ("ranking", "explainer", "project", "batches", "memory")

# The targets, for a 2-core machine.
TARGET_RANKING_FLOOR = 1.5  # ranking render / floor, at most
TARGET_MOVIEPY = 6.0  # MoviePy / ranking render, at least
TARGET_EXPLAINER_FLOOR = 1.5  # explainer render / its floor, at most
TARGET_OVERHEAD = 0.10  # share of a project's wall time outside ffmpeg, at most
TARGET_SPEEDUP = 1.7  # concurrent / serial throughput, at least
TARGET_PEAK_MB = 800.0  # peak RSS of a render's process tree, MB (10^6 bytes), at most
TARGET_FLAT = 1.10  # peak RSS of the longest render / the shortest, at most ("flat")
TARGET_CACHED_S = 5.0  # a cached re-run of an unchanged project, seconds, at most

MEMORY_SOURCE_SECONDS = 38.0  # long enough for the 180 s timeline's 35.7 s trims
MB = 1_000_000


@dataclass(frozen=True)
class Config:
    smoke: bool
    rounds: int
    moviepy_rounds: int
    sizes: tuple[int, ...]
    batch_rounds: dict[int, int]
    jobs: int
    memory_lengths: tuple[float, ...]
    settle: float
    cache: Path
    work: Path
    keep: bool


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    cfg = _config(args)
    sections = args.only.split(",") if args.only else list(SECTIONS)
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    started_utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    started = time.perf_counter()
    sources_before = pipeline_sources_sha1()
    cfg.work.mkdir(parents=True, exist_ok=True)
    print(
        f"benchmark ({'smoke' if cfg.smoke else 'full'}): {', '.join(sections)}; work in "
        f"{cfg.work}",
        flush=True,
    )
    runners: dict[str, Callable[[Config], dict[str, Any]]] = {
        "ranking": section_ranking,
        "explainer": section_explainer,
        "project": section_project,
        "batches": section_batches,
        "memory": section_memory,
    }
    results: dict[str, Any] = {}
    for name in sections:
        print(f"\n== {name} ==", flush=True)
        began = time.perf_counter()
        try:
            results[name] = runners[name](cfg)
        except BaseException:
            # Keep the homes and logs of what failed (the message says which log to read).
            print(f"\n{name} failed: its homes and logs are kept in {cfg.work}", file=sys.stderr)
            raise
        results[name]["elapsed_s"] = round(time.perf_counter() - began, 1)
        print(f"   ({name}: {results[name]['elapsed_s']:.0f} s)", flush=True)
    if not cfg.keep:
        shutil.rmtree(cfg.work, ignore_errors=True)
    machine = rr._machine_info()
    machine["espeak_ng"] = er._first_line("espeak-ng", "--version")
    machine["pipeline_sources_sha1"] = sources_before
    machine["pipeline_changed_during_run"] = pipeline_sources_sha1() != sources_before
    machine["worktree_dirty"] = _git_dirty("shorts_pipeline", "bench")
    report = {
        "benchmark": "bench/run.py",
        "mode": "smoke" if cfg.smoke else "full",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started_utc": started_utc,
        "elapsed_s": round(time.perf_counter() - started, 1),
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("cache", "work")},
        "targets": {
            "ranking_vs_floor_at_most": TARGET_RANKING_FLOOR,
            "moviepy_vs_ranking_at_least": TARGET_MOVIEPY,
            "explainer_vs_floor_at_most": TARGET_EXPLAINER_FLOOR,
            "outside_ffmpeg_share_at_most": TARGET_OVERHEAD,
            "concurrent_speedup_at_least": TARGET_SPEEDUP,
            "peak_rss_mb_at_most": TARGET_PEAK_MB,
            "peak_rss_longest_vs_shortest_at_most": TARGET_FLAT,
            "cached_rerun_s_at_most": TARGET_CACHED_S,
        },
        "table": table_rows(results),
        "sections": results,
        "machine": machine,
    }
    print()
    print(format_report(report))
    if args.json:
        rr._write_json(Path(args.json), report)
        print(f"\nresults written to {args.json}")
    return 0


# --- sections ------------------------------------------------------------------------------


def section_ranking(cfg: Config) -> dict[str, Any]:
    """floor-lavfi, ours (and MoviePy in the first rounds) alternating; floor-real once."""
    plan = rr.SMOKE_PLAN if cfg.smoke else rr.FULL_PLAN
    manifest_path = rr.prepare_inputs(cfg.cache, plan, cfg.work / "ranking")
    manifest = json.loads(manifest_path.read_text())
    timeline = rr.build_timeline(manifest)
    print(f"  {len(timeline.segments)} segments, {timeline.duration:.2f} s", flush=True)
    bench = rr.Bench(manifest_path, timeline, settle=cfg.settle)
    runs: list[Any] = []
    try:
        for round_no in range(1, cfg.rounds + 1):
            todo = ["floor-lavfi", "ours"]
            if round_no == 1:
                todo.append("floor-real")  # information: the encode cost of our own frames
            if round_no <= cfg.moviepy_rounds:
                todo.append("moviepy")
            for variant in todo:
                run = bench.measure(variant, round_no)
                runs.append(run)
                _print_run(run, cfg.rounds)
    finally:
        bench.cleanup(keep=cfg.keep)
    summary = rr.summarise(runs, timeline)
    median = {v: row["wall_median_s"] for v, row in summary.items()}
    return {
        "plan": plan.name,
        "video_s": round(timeline.duration, 3),
        "encoder_args": bench.encode,
        "summary": summary,
        "ratios": {
            "ours_vs_floor_lavfi": rr._ratio(median.get("ours"), median.get("floor-lavfi")),
            "moviepy_vs_ours": rr._ratio(median.get("moviepy"), median.get("ours")),
            "ours_vs_floor_real": rr._ratio(median.get("ours"), median.get("floor-real")),
        },
        "runs": [asdict(r) for r in runs],
    }


def section_explainer(cfg: Config) -> dict[str, Any]:
    """The whole graph of the explainer in a fresh home (so nothing is reused), then its floor,
    alternating; the figure is the `video` asset's render time against the floor."""
    plan = er.SMOKE_PLAN if cfg.smoke else er.FULL_PLAN
    library = cfg.cache / ("empty-library" if cfg.smoke else "demo-library")
    library.mkdir(parents=True, exist_ok=True)
    if not cfg.smoke:
        from shorts_pipeline.render.synth import make_demo_library

        make_demo_library(library)  # cached; b-roll is off, see explainer_render.Plan
    run_dir = cfg.work / "explainer"
    bench = er.Bench(plan, run_dir, library, cfg.settle)
    runs: list[Any] = []
    try:
        for round_no in range(1, cfg.rounds + 1):
            home = run_dir / f"home-{round_no}"
            run = bench.measure_pipeline("cold", round_no, home, None)
            er._check_run(run, plan)
            runs.append(run)
            _print_run(run, cfg.rounds, f"render {run.child['render_s']:.2f} s")
            run = bench.measure_floor("floor-lavfi", round_no)
            runs.append(run)
            _print_run(run, cfg.rounds)
            if not cfg.keep:
                shutil.rmtree(home, ignore_errors=True)
    finally:
        bench.cleanup(keep=cfg.keep)
    renders = [r.child["render_s"] for r in runs if r.variant == "cold"]
    floors = [r.wall_s for r in runs if r.variant == "floor-lavfi"]
    first = next(r.child for r in runs if r.variant == "cold")
    return {
        "plan": plan.name,
        "video_s": first["video_duration_s"],
        "scenes": first["scenes"],
        "render_median_s": round(statistics.median(renders), 3),
        "floor_median_s": round(statistics.median(floors), 3),
        "ratio": rr._ratio(statistics.median(renders), statistics.median(floors)),
        "summary": er.summarise(runs),
        "runs": [asdict(r) for r in runs],
    }


def section_project(cfg: Config) -> dict[str, Any]:
    """Per round, a fresh home: `shorts run` on a new project (cold), then again (cached)."""
    plan = pb.PROJECT_SMOKE if cfg.smoke else pb.PROJECT_FULL
    homes = pb.Homes(cfg.work / "project", _library(cfg))
    homes.prepare_seed(plan.keywords)
    runs: list[Any] = []
    for round_no in range(1, cfg.rounds + 1):
        home = homes.new(f"home-{round_no}")
        [key] = homes.register(home, plan, [plan.title])
        for phase in ("cold", "cached"):
            report_path = home / f"{phase}.json"
            run = er.measure_process(
                f"project-{phase}",
                round_no,
                pb.run_command(key, report_path),
                pb.child_env(home),
                home / f"{phase}.log",
                cfg.settle,
            )
            run.child = pb.profile_run(home, pb.read_report(report_path))
            run.child["video_s"] = _video_seconds(home, key)
            runs.append(run)
            c = run.child
            _print_run(
                run,
                cfg.rounds,
                f"command {c['wall_s']:.2f} s, ffmpeg {c['ffmpeg_s']:.2f} s, outside "
                f"{100 * c['outside_share']:.1f}%",
            )
        if not cfg.keep:
            shutil.rmtree(home, ignore_errors=True)
    summary = {}
    for phase in ("cold", "cached"):
        mine = [r.child for r in runs if r.variant == f"project-{phase}"]
        summary[phase] = {
            "wall_median_s": _med([c["wall_s"] for c in mine]),
            "ffmpeg_median_s": _med([c["ffmpeg_s"] for c in mine]),
            "outside_median_s": _med([c["outside_ffmpeg_s"] for c in mine]),
            "outside_share_median": _med([c["outside_share"] for c in mine], 4),
            "parts_median_s": {
                part: _med([c["parts_s"][part] for c in mine]) for part in mine[0]["parts_s"]
            },
            "steps_median": {
                step: {
                    field: _med([c["steps"][step][field] for c in mine if step in c["steps"]])
                    for field in ("seconds", "ffmpeg_s", "python_s", "processes")
                }
                for step in pb.STAGES
                if any(step in c["steps"] for c in mine)
            },
            "video_s": mine[0]["video_s"],
            "cpu_median_s": _med([r.cpu_s for r in runs if r.variant == f"project-{phase}"]),
            "peak_tree_rss_mib": round(
                max(r.peak_tree_rss_mib for r in runs if r.variant == f"project-{phase}")
            ),
        }
    return {"plan": asdict(plan), "summary": summary, "runs": [asdict(r) for r in runs]}


def section_batches(cfg: Config) -> dict[str, Any]:
    """N projects through `shorts run`: one at a time, then at most `jobs` at once, alternating;
    every batch in a fresh home with the same N projects."""
    plan = pb.PROJECT_SMOKE if cfg.smoke else pb.PROJECT_BATCH
    homes = pb.Homes(cfg.work / "batches", _library(cfg))
    homes.prepare_seed(plan.keywords)
    runs: list[Any] = []
    for n in cfg.sizes:
        rounds = cfg.batch_rounds.get(n, 1)
        # One project has nothing to run beside it: its serial run is its throughput.
        modes = ("serial",) if n == 1 else ("serial", "concurrent")
        for round_no in range(1, rounds + 1):
            for mode in modes:
                home = homes.new(f"n{n}-{mode}-{round_no}")
                titles = [f"{plan.title} #{i:02d}" for i in range(1, n + 1)]
                keys = homes.register(home, plan, titles)
                report_dir = home / "reports"
                run = er.measure_process(
                    f"batch-{n}-{mode}",
                    round_no,
                    pb.batch_command(mode, cfg.jobs, keys, report_dir),
                    pb.child_env(home),
                    home / "batch.log",
                    cfg.settle,
                )
                per = [pb.read_report(report_dir / f"{i:02d}.json") for i in range(n)]
                walls = [pb.wall_and_ffmpeg(p) for p in per]
                run.child = {
                    "n": n,
                    "mode": mode,
                    "jobs": 1 if mode == "serial" else cfg.jobs,
                    "videos_per_minute": round(60 * n / run.wall_s, 3),
                    "cpu_cores_busy": round(run.cpu_s / run.wall_s, 3),
                    "cpu_s_per_video": round(run.cpu_s / n, 2),
                    "project_walls_s": [round(w, 3) for w, _ in walls],
                    "project_ffmpeg_s": [round(f, 3) for _, f in walls],
                    "video_s": _video_seconds(home, keys[0]),
                }
                runs.append(run)
                _print_run(
                    run,
                    rounds,
                    f"{n} videos, {run.child['videos_per_minute']:.2f}/min, "
                    f"{run.child['cpu_cores_busy']:.2f} cores busy",
                )
                if not cfg.keep:
                    shutil.rmtree(home, ignore_errors=True)
    summary: dict[str, Any] = {}
    ncpu = rr._cpu_count()
    for n in cfg.sizes:
        row: dict[str, Any] = {}
        for mode in ("serial", "concurrent"):
            mine = [r for r in runs if r.variant == f"batch-{n}-{mode}"]
            if not mine:
                continue
            wall = _med([r.wall_s for r in mine])
            row[mode] = {
                "runs": len(mine),
                "wall_median_s": wall,
                "videos_per_minute": round(60 * n / wall, 3),
                "cpu_cores_busy_median": _med([r.child["cpu_cores_busy"] for r in mine]),
                "cpu_s_per_video_median": _med([r.child["cpu_s_per_video"] for r in mine]),
                "project_wall_mean_s": round(
                    statistics.mean(w for r in mine for w in r.child["project_walls_s"]), 2
                ),
                "peak_tree_rss_mib": round(max(r.peak_tree_rss_mib for r in mine)),
                "others_cpu_pct": [round(r.others_cpu_pct, 1) for r in mine],
            }
        if "serial" in row and "concurrent" in row:
            s, c = row["serial"], row["concurrent"]
            row["speedup"] = rr._ratio(s["wall_median_s"], c["wall_median_s"])
            # At the serial CPU cost per video, the machine's cores allow at most this much.
            row["speedup_bound_cpu"] = round(ncpu / s["cpu_cores_busy_median"], 2)
        summary[str(n)] = row
    return {
        "plan": asdict(plan),
        "jobs": cfg.jobs,
        "summary": summary,
        "runs": [asdict(r) for r in runs],
    }


def section_memory(cfg: Config) -> dict[str, Any]:
    """The ranking render at several output lengths: the same 5 inputs, longer trims."""
    runs: list[Any] = []
    rows = {}
    for seconds in cfg.memory_lengths:
        plan = memory_plan(seconds, cfg.smoke)
        manifest_path = rr.prepare_inputs(cfg.cache, plan, cfg.work / plan.name)
        timeline = rr.build_timeline(json.loads(manifest_path.read_text()))
        bench = rr.Bench(manifest_path, timeline, settle=cfg.settle)
        try:
            run = bench.measure("ours", 1)
        finally:
            bench.cleanup(keep=cfg.keep)
        run.variant = f"memory-{seconds:g}s"
        runs.append(run)
        ffmpeg_peak = max(
            (p["peak_rss_mib"] for p in run.processes if "ffmpeg" in p["what"]), default=0.0
        )
        rows[f"{seconds:g}"] = {
            "video_s": round(timeline.duration, 3),
            "clip_seconds": plan.clip_seconds,
            "render_s": round(run.wall_s, 2),
            "realtime_factor": round(timeline.duration / run.wall_s, 2),
            "peak_tree_mb": round(run.peak_tree_rss_mib * rr.MIB / MB),
            "peak_tree_mib": round(run.peak_tree_rss_mib),
            "peak_ffmpeg_mb": round(ffmpeg_peak * rr.MIB / MB),
            "others_cpu_pct": round(run.others_cpu_pct, 1),
        }
        _print_run(run, 1, f"{timeline.duration:.1f} s of video")
    peaks = [row["peak_tree_mb"] for row in rows.values()]
    how = (
        "the smoke plan's 2 small 3 s clips"
        if cfg.smoke
        else "ranking_render's 5 input shapes (1080p, portrait, 720p60, 4:3 25 fps, 4K HEVC "
        f"10-bit) synthesised {MEMORY_SOURCE_SECONDS:g} s long"
    )
    return {
        "how": f"{how}; each length trims longer segments of the same files (same structure: "
        "title, clips with badges, outro, fades, music)",
        "summary": rows,
        "longest_vs_shortest": round(peaks[-1] / peaks[0], 3) if peaks and peaks[0] else None,
        "runs": [asdict(r) for r in runs],
    }


def memory_plan(seconds: float, smoke: bool) -> rr.BenchPlan:
    base = rr.SMOKE_PLAN if smoke else rr.FULL_PLAN
    if smoke:
        clips = base.clips  # 3 s sources: lengths of a few seconds
    else:
        from shorts_pipeline.render.synth import DEMO_LIBRARY

        demo = {c.id: c.recipe for c in DEMO_LIBRARY}
        clips = tuple(
            replace(c, recipe=replace(demo[c.demo_id], seconds=MEMORY_SOURCE_SECONDS))
            for c in base.clips
        )
    return replace(base, name=f"memory-{seconds:g}s", clips=clips, target_seconds=seconds)


def _library(cfg: Config) -> Path:
    from shorts_pipeline.render.synth import make_demo_library

    if cfg.smoke:
        library = cfg.cache / "smoke-library"
        make_demo_library(library, recipes=pb.smoke_library_clips())
    else:
        library = cfg.cache / "demo-library"
        make_demo_library(library)
    return library


def _video_seconds(home: Path, key: str) -> float | None:
    from shorts_pipeline.render.probe import probe_json

    videos = list((home / "media" / "projects" / key).glob("video.mp4"))
    if not videos:
        return None
    return round(float(probe_json(videos[0]).get("format", {}).get("duration", 0)), 3)


# --- the table -----------------------------------------------------------------------------


def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """measure, value, target, verdict (PASS/MISS/info) and the CPU others used meanwhile."""
    rows: list[dict[str, Any]] = []

    def add(measure: str, value: str, target: str, verdict: str, runs: list[dict[str, Any]]):
        busy = [r["others_cpu_pct"] for r in runs]
        rows.append(
            {
                "measure": measure,
                "value": value,
                "target": target,
                "verdict": verdict,
                "others_pct_median": round(statistics.median(busy), 1) if busy else None,
                "others_pct_max": round(max(busy), 1) if busy else None,
            }
        )

    rk = results.get("ranking")
    if rk:
        s, ratios = rk["summary"], rk["ratios"]
        pair = [r for r in rk["runs"] if r["variant"] in ("ours", "floor-lavfi")]
        add(
            f"ranking render / floor ({rk['video_s']:.0f} s video)",
            f"{_x(ratios['ours_vs_floor_lavfi'])} ({s['ours']['wall_median_s']:.1f} s / "
            f"{s['floor-lavfi']['wall_median_s']:.1f} s)",
            f"<= {TARGET_RANKING_FLOOR}x",
            _verdict(ratios["ours_vs_floor_lavfi"], TARGET_RANKING_FLOOR, at_most=True),
            pair,
        )
        if "moviepy" in s:
            add(
                "MoviePy 2 / ranking render",
                f"{_x(ratios['moviepy_vs_ours'])} ({s['moviepy']['wall_median_s']:.1f} s / "
                f"{s['ours']['wall_median_s']:.1f} s)",
                f">= {TARGET_MOVIEPY:g}x",
                _verdict(ratios["moviepy_vs_ours"], TARGET_MOVIEPY, at_most=False),
                [r for r in rk["runs"] if r["variant"] in ("ours", "moviepy")],
            )
    ex = results.get("explainer")
    if ex:
        add(
            f"explainer render / floor ({ex['video_s']:.0f} s, {ex['scenes']} scenes)",
            f"{_x(ex['ratio'])} ({ex['render_median_s']:.1f} s / {ex['floor_median_s']:.1f} s)",
            f"<= {TARGET_EXPLAINER_FLOOR}x",
            _verdict(ex["ratio"], TARGET_EXPLAINER_FLOOR, at_most=True),
            ex["runs"],
        )
    pj = results.get("project")
    if pj:
        cold, cached = pj["summary"]["cold"], pj["summary"]["cached"]
        cold_runs = [r for r in pj["runs"] if r["variant"] == "project-cold"]
        add(
            f"one project, all stages (`shorts run`, {cold['video_s'] or 0:.0f} s video)",
            f"{cold['wall_median_s']:.1f} s (ffmpeg {cold['ffmpeg_median_s']:.1f} s)",
            "-",
            "info",
            cold_runs,
        )
        add(
            "  of which outside ffmpeg (orchestration)",
            f"{100 * cold['outside_share_median']:.1f}% ({cold['outside_median_s']:.1f} s)",
            f"<= {100 * TARGET_OVERHEAD:.0f}%",
            _verdict(cold["outside_share_median"], TARGET_OVERHEAD, at_most=True),
            cold_runs,
        )
        add(
            "cached re-run of the unchanged project",
            f"{cached['wall_median_s']:.1f} s (ffmpeg {cached['ffmpeg_median_s']:.1f} s)",
            f"<= {TARGET_CACHED_S:g} s",
            _verdict(cached["wall_median_s"], TARGET_CACHED_S, at_most=True),
            [r for r in pj["runs"] if r["variant"] == "project-cached"],
        )
    bt = results.get("batches")
    if bt:
        for n, row in bt["summary"].items():
            mine = [r for r in bt["runs"] if r["child"]["n"] == int(n)]
            if "concurrent" not in row:
                s = row["serial"]
                add(
                    f"N={n}: throughput",
                    f"{s['videos_per_minute']:.2f} videos/min",
                    "-",
                    "info",
                    mine,
                )
                continue
            s, c = row["serial"], row["concurrent"]
            add(
                f"N={n}: throughput, {bt['jobs']} runs at once vs 1",
                f"{_x(row['speedup'])} ({c['videos_per_minute']:.2f} vs "
                f"{s['videos_per_minute']:.2f} videos/min)",
                f">= {TARGET_SPEEDUP}x",
                _verdict(row["speedup"], TARGET_SPEEDUP, at_most=False),
                mine,
            )
    mm = results.get("memory")
    if mm:
        for seconds, row in mm["summary"].items():
            add(
                f"peak RSS, render of {row['video_s']:.0f} s",
                f"{row['peak_tree_mb']} MB (ffmpeg {row['peak_ffmpeg_mb']} MB)",
                f"<= {TARGET_PEAK_MB:g} MB",
                _verdict(row["peak_tree_mb"], TARGET_PEAK_MB, at_most=True),
                [r for r in mm["runs"] if r["variant"] == f"memory-{seconds}s"],
            )
        add(
            "peak RSS, longest / shortest render",
            _x(mm["longest_vs_shortest"]),
            f"<= {TARGET_FLAT}x (flat)",
            _verdict(mm["longest_vs_shortest"], TARGET_FLAT, at_most=True),
            mm["runs"],
        )
    return rows


def format_report(report: dict[str, Any]) -> str:
    m = report["machine"]
    ffmpeg = (m["ffmpeg"] or "no ffmpeg").split(" Copyright")[0]
    lines = [
        f"bench/run.py ({report['mode']}), {report['elapsed_s'] / 60:.1f} min; machine: "
        f"{m['nproc']} CPUs ({m['cpu_model']}), {ffmpeg}; commit {m['git_commit'][:10]}"
        + (" (working tree differs)" if m["worktree_dirty"] else ""),
        "",
    ]
    rows = report["table"]
    width = max([len(r["measure"]) for r in rows] + [20])
    vwidth = max([len(r["value"]) for r in rows] + [10])
    header = (
        f"{'measure':<{width}} | {'value':<{vwidth}} | {'target':<17} | {'':<7}| others med/max"
    )
    lines += [header, "-" * len(header)]
    for r in rows:
        busy = (
            f"{r['others_pct_median']:.0f}% / {r['others_pct_max']:.0f}%"
            if r["others_pct_median"] is not None
            else "-"
        )
        lines.append(
            f"{r['measure']:<{width}} | {r['value']:<{vwidth}} | {r['target']:<17} | "
            f"{r['verdict']:<7}| {busy}"
        )
    s = report["sections"]
    lines += ["", *_details(s)]
    lines += [
        "",
        "Each value is the median of the runs listed above; runs alternate with the ones they",
        "are compared to. others: CPU other processes used during those runs, as a share of",
        "the machine (median / max): above ~10 % the times are inflated.",
    ]
    noisy = [r["others_pct_max"] for r in rows if r["others_pct_max"] and r["others_pct_max"] > 10]
    if noisy:
        lines.append(
            f"WARNING: other processes took up to {max(noisy):.0f}% of the CPUs during some runs; "
            "compare runs with a low 'others' (every run is in the JSON)."
        )
    if m.get("pipeline_changed_during_run"):
        lines.append(
            "WARNING: shorts_pipeline/ changed while the benchmark ran (others work in this "
            "checkout): the runs measured more than one version."
        )
    return "\n".join(lines)


def _details(s: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    rk = s.get("ranking")
    if rk:
        lines.append(f"ranking render ({rk['video_s']:.2f} s video), per variant:")
        for name, row in rk["summary"].items():
            lines.append(
                f"  {name:<12} n={row['runs']}  wall {row['wall_median_s']:7.2f} s (min "
                f"{row['wall_min_s']:.2f})  CPU {row['cpu_median_s']:6.1f} s  peak "
                f"{row['peak_tree_rss_mib']:5d} MiB  x{row['ratio_vs_floor']} floor  others "
                f"{row['others_cpu_pct_median']}%"
            )
        ours = sorted((r for r in rk["runs"] if r["variant"] == "ours"), key=lambda r: r["wall_s"])
        if ours:
            median_run = ours[(len(ours) - 1) // 2]
            lines.append(f"  ours by process (round {median_run['round']}):")
            for p in median_run["processes"]:
                if "ffmpeg" in p["what"] or p["cpu_s"] >= 0.5:
                    lines.append(
                        f"    {p['what'][:46]:<46} ~{p['last_s'] - p['first_s']:6.1f} s wall "
                        f"{p['cpu_s']:6.1f} s CPU {p['peak_rss_mib']:5.0f} MiB"
                    )
    ex = s.get("explainer")
    if ex:
        cold = ex["summary"].get("cold", {})
        lines.append(
            f"explainer ({ex['video_s']:.2f} s, {ex['scenes']} scenes): render "
            f"{ex['render_median_s']:.2f} s, floor {ex['floor_median_s']:.2f} s; whole graph "
            f"{cold.get('steps_total_s_median', 0):.2f} s of steps, child process "
            f"{cold.get('wall_median_s', 0):.2f} s"
        )
    pj = s.get("project")
    if pj:
        cold, cached = pj["summary"]["cold"], pj["summary"]["cached"]
        lines.append(
            f"one project, `shorts run` (median s; ffmpeg = ffmpeg/ffprobe processes alive): "
            f"CPU {cold['cpu_median_s']:.1f} s, peak {cold['peak_tree_rss_mib']} MiB"
        )
        lines.append(
            f"  {'stage':<24}{'cold':>8}{'ffmpeg':>8}{'procs':>6}   {'cached':>8}{'ffmpeg':>8}"
        )
        for step in pb.STAGES:
            a, b = cold["steps_median"].get(step), cached["steps_median"].get(step)
            if a is None and b is None:
                continue

            def cell(x: dict[str, Any] | None, procs: bool = False) -> str:
                if x is None:
                    return f"{'not run':>16}" + ("      " if procs else "")
                text = f"{x['seconds']:8.2f}{x['ffmpeg_s']:8.2f}"
                return text + (f"{x['processes']:6.0f}" if procs else "")

            lines.append(f"  {step:<24}{cell(a, True)}   {cell(b)}")
        for part, label in (
            ("startup", "start-up (interpreter, imports, instance)"),
            ("stages_python", "stages' own Python (outside ffmpeg)"),
            ("dagster_between_stages", "Dagster between stages"),
            ("wrap_up", "after the run (command wrap-up)"),
        ):
            lines.append(
                f"  {label:<42}{cold['parts_median_s'][part]:8.2f}   "
                f"{cached['parts_median_s'][part]:8.2f}"
            )
        lines.append(
            f"  {'total: command wall / ffmpeg / outside':<42}{cold['wall_median_s']:8.2f} / "
            f"{cold['ffmpeg_median_s']:.2f} / {cold['outside_median_s']:.2f}   cached "
            f"{cached['wall_median_s']:.2f} / {cached['ffmpeg_median_s']:.2f} / "
            f"{cached['outside_median_s']:.2f}"
        )
        cold_runs = [r for r in pj["runs"] if r["variant"] == "project-cold"]
        if cold_runs:
            labels = cold_runs[0]["child"]["ffmpeg_by_label"]
            top = ", ".join(
                f"{k} {v['seconds']:.1f} s" + (f" x{v['count']}" if v["count"] > 1 else "")
                for k, v in list(labels.items())[:6]
            )
            lines.append(f"  ffmpeg processes (round 1, cold): {top}")
    bt = s.get("batches")
    if bt:
        lines.append(
            f"batches of short ranking projects (`shorts run` processes on one instance, "
            f"{bt['jobs']} at once when concurrent):"
        )
        for n, row in bt["summary"].items():
            for mode in ("serial", "concurrent"):
                x = row.get(mode)
                if x:
                    lines.append(
                        f"  N={n:<3} {mode:<10} n={x['runs']} wall {x['wall_median_s']:7.1f} s  "
                        f"{x['videos_per_minute']:5.2f} videos/min  cores busy "
                        f"{x['cpu_cores_busy_median']:.2f}  CPU/video "
                        f"{x['cpu_s_per_video_median']:.1f} s  project wall (mean) "
                        f"{x['project_wall_mean_s']:.1f} s  peak {x['peak_tree_rss_mib']} MiB"
                    )
            if "speedup" in row:
                lines.append(
                    f"         speed-up {row['speedup']}x; at the serial CPU cost per video the "
                    f"{rr._cpu_count()} cores allow at most {row['speedup_bound_cpu']}x"
                )
    mm = s.get("memory")
    if mm:
        lines.append(f"memory: {mm['how']}")
        for row in mm["summary"].values():
            lines.append(
                f"  {row['video_s']:7.2f} s video (clips {row['clip_seconds']:.2f} s): render "
                f"{row['render_s']:6.1f} s ({row['realtime_factor']:.2f}x realtime), peak tree "
                f"{row['peak_tree_mb']} MB / {row['peak_tree_mib']} MiB, ffmpeg "
                f"{row['peak_ffmpeg_mb']} MB"
            )
    return lines


# --- helpers -------------------------------------------------------------------------------


def _print_run(run: Any, rounds: int, extra: str = "") -> None:
    busy = f" ({', '.join(run.others_top[:2])})" if run.others_cpu_pct > 10 else ""
    print(
        f"  round {run.round}/{rounds} {run.variant:<20} {run.wall_s:8.2f} s wall "
        f"{run.cpu_s:7.1f} s CPU {run.peak_tree_rss_mib:6.0f} MiB others "
        f"{run.others_cpu_pct:3.0f}%{busy}" + (f" | {extra}" if extra else ""),
        flush=True,
    )


def _med(values: Sequence[float], digits: int = 3) -> float:
    return round(statistics.median(values), digits) if values else 0.0


def _x(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "n/a"


def _verdict(value: float | None, target: float, *, at_most: bool) -> str:
    return rr._verdict(value, target, at_most=at_most)


def pipeline_sources_sha1() -> str:
    """One hash of shorts_pipeline/**/*.py: others work in this checkout while we measure."""
    digest = hashlib.sha1()
    root = REPO_DIR / "shorts_pipeline"
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _git_dirty(*paths: str) -> bool:
    proc = subprocess.run(
        ["git", "status", "--porcelain", "--", *paths],
        capture_output=True,
        text=True,
        cwd=REPO_DIR,
        check=False,
    )
    return bool(proc.stdout.strip())


def _config(args: argparse.Namespace) -> Config:
    smoke = args.smoke
    sizes = (
        tuple(int(n) for n in args.sizes.split(","))
        if args.sizes
        else ((2,) if smoke else (1, 4, 16))
    )
    batch_rounds = {n: 1 for n in sizes}
    if not smoke:
        batch_rounds.update({n: 2 if n <= 4 else 1 for n in sizes})
        for item in filter(None, (args.batch_rounds or "").split(",")):
            n, _, r = item.partition(":")
            batch_rounds[int(n)] = int(r)
    lengths = args.memory_lengths or ("3,5" if smoke else "15,60,180")
    cache = Path(args.cache).resolve()
    return Config(
        smoke=smoke,
        rounds=1 if smoke else args.rounds,
        moviepy_rounds=1 if smoke else min(args.moviepy_rounds, args.rounds),
        sizes=sizes,
        batch_rounds=batch_rounds,
        jobs=args.jobs,
        memory_lengths=tuple(float(x) for x in lengths.split(",")),
        settle=args.settle if args.settle is not None else (0.0 if smoke else 20.0),
        cache=cache,
        work=cache / f"run-{'smoke' if smoke else 'full'}-{os.getpid()}",
        keep=args.keep,
    )


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="The benchmark command: every ratio of issue 8 in one table (and JSON)."
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny inputs, every section once, no settle wait, no times asserted (CI)",
    )
    parser.add_argument("--json", metavar="PATH", help="write the table and every run as JSON")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of ranking, explainer, project (3)"
    )
    parser.add_argument(
        "--moviepy-rounds",
        type=int,
        default=2,
        help="ranking rounds with MoviePy (2; ~3-5 min each)",
    )
    parser.add_argument("--sizes", help="batch sizes N (default 1,4,16; smoke 2)")
    parser.add_argument(
        "--batch-rounds", help="rounds per batch size, e.g. 1:2,4:2,16:1 (the default)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs at once in a concurrent batch")
    parser.add_argument(
        "--memory-lengths", help="output lengths in s for the memory runs (15,60,180)"
    )
    parser.add_argument("--only", help=f"comma-separated sections: {','.join(SECTIONS)}")
    parser.add_argument(
        "--settle",
        type=float,
        default=None,
        help="before each run, wait up to this many seconds for other processes to go quiet "
        "(default 20; 0 with --smoke)",
    )
    parser.add_argument(
        "--cache", default=str(rr.DEFAULT_CACHE), help="inputs (kept) and work folders"
    )
    parser.add_argument("--keep", action="store_true", help="keep homes, outputs and logs")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


if __name__ == "__main__":
    sys.exit(main())
