"""Whole-pipeline measurements for bench/run.py: projects through `shorts run`.

- one project   `shorts run KEY` on a fresh ranking project, all stages, offline providers;
                its wall time split into the time ffmpeg/ffprobe child processes were alive
                (the union of their lifetimes, recorded exactly inside the process) and the
                rest: interpreter start-up and imports, each stage's own Python work, Dagster
                between the stages, the command's wrap-up. The rest is the orchestration
                overhead the issue asks about.
- cached        `shorts run KEY` again on the same, unchanged project; per-stage times.
- N projects    N `shorts run KEY` processes on one Dagster instance, one by one (serial) and
                with at most `jobs` alive at once (concurrent), each batch in a fresh home.

Each run is the code path of the `shorts run` command: the child calls
`shorts_pipeline.cli.main(["run", KEY])` in a fresh interpreter, after wrapping
`subprocess.Popen` so that every child process's start and end (reaping) times are written to
a report. Nothing else changes. The stages' times come from the run's Dagster event log.

Homes: every round uses a fresh SHORTS_HOME (catalog, Dagster instance, caches, media). Two
machine-level caches that any home has after its first video are put in beforehand, the
same for every run: the library's probe cache (`cache/probe-cache.json`) and the bundled
music bed (`cache/music/bed-v1.m4a`). Per-project caches (speech, clip copies, renders) start
empty.

Children (run by the measuring parent, not by hand):

    python bench/pipeline_bench.py --child run --key KEY --report FILE
    python bench/pipeline_bench.py --child batch --mode serial|concurrent --jobs 2 \\
        --keys K1,K2,... --report-dir DIR
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
STAGES = (
    "search_results",
    "selections",
    "script",
    "narration",
    "segments",
    "slides",
    "video",
    "upload",
)
# Everything lives in the run's fresh home.
ENV_DROP = ("SHORTS_CATALOG_URL", "SHORTS_MEDIA_URL", "SHORTS_LIBRARY", "DAGSTER_HOME")
MUSIC_BED = Path("cache") / "music" / "bed-v1.m4a"  # where video._music_path keeps it
PROBE_CACHE = Path("cache") / "probe-cache.json"  # where clip_sources._probe_cached keeps it


# --- what is run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectPlan:
    name: str
    title: str
    keywords: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)  # ProjectSettings fields


# `shorts demo`'s ranking project: 5 clips of the demo library (one 4K HEVC), narration,
# title and outro cards, music: a ~40 s video.
PROJECT_FULL = ProjectPlan("project", "Top 5 football skills of the year", ("football", "skills"))
# Small enough that 16 of them twice (serial and concurrent) fit in minutes: 2 clips of at
# most 3 s between 1 s cards, no voice (a ~7 s video). A spoken line lengthens its segment
# to fit: with narration the same project cost ~46 s of CPU per video here, ~35 s without.
PROJECT_BATCH = ProjectPlan(
    "batch",
    "Quick top 2 football skills",
    ("football", "skills"),
    {
        "narration": False,
        "count": 2,
        "clip_min_seconds": 2.0,
        "clip_max_seconds": 3.0,
        "title_seconds": 1.0,
        "outro_seconds": 1.0,
    },
)
# CI: a tiny library, 2 short clips and no voice (lines would lengthen the video): ~3 s.
PROJECT_SMOKE = ProjectPlan(
    "smoke",
    "Smoke top 2",
    ("football",),
    {
        "narration": False,
        "count": 2,
        "clip_min_seconds": 1.0,
        "clip_max_seconds": 1.5,
        "title_seconds": 0.5,
        "outro_seconds": 0.5,
    },
)


def smoke_library_clips() -> tuple[Any, ...]:
    """Three tiny clips with a catalog, so a smoke run synthesises its library in seconds."""
    from shorts_pipeline.render.synth import ClipRecipe, DemoClip

    def clip(n: int, w: int, h: int, title: str) -> DemoClip:
        return DemoClip(
            id=f"smoke-clip-{n}",
            title=title,
            views=1000 * n,
            likes=100 * n,
            published="2026-06-01",
            tags=("football", "skills"),
            recipe=ClipRecipe(w, h, 3, 30, pattern="pitch", seed=50 + n),
        )

    return (
        clip(1, 320, 180, "Smoke goal"),
        clip(2, 180, 320, "Smoke dribble"),
        clip(3, 240, 240, "Smoke save"),
    )


# --- the parent side -----------------------------------------------------------------------


class Homes:
    """Fresh SHORTS_HOMEs with the machine-level caches in place, projects registered."""

    def __init__(self, root: Path, library: Path) -> None:
        self.root = root
        self.library = library
        self.seed = root / "seed-home"

    def prepare_seed(self, keywords: Sequence[str]) -> None:
        """Probe the library once and make the music bed once (untimed), for every home."""
        from shorts_pipeline.render.synth import make_music_bed

        music = self.seed / MUSIC_BED
        if not music.exists():
            music.parent.mkdir(parents=True, exist_ok=True)
            make_music_bed(music, seconds=60)
        with _shorts_home(self.seed):
            from shorts_pipeline.resources.clip_sources import LocalLibrarySource

            LocalLibrarySource(directory=str(self.library)).search(list(keywords))

    def new(self, name: str) -> Path:
        home = self.root / name
        shutil.rmtree(home, ignore_errors=True)
        for cached in (MUSIC_BED, PROBE_CACHE):
            if (self.seed / cached).exists():
                (home / cached).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.seed / cached, home / cached)
        return home

    def register(self, home: Path, plan: ProjectPlan, titles: Sequence[str]) -> list[str]:
        """Add the projects to the home's catalog and its Dagster instance (as `shorts add`
        does), so that concurrent first runs do not race to create the instance's storage."""
        import dagster as dg

        from shorts_pipeline.cli import DAGSTER_CONFIG
        from shorts_pipeline.models import ProjectSettings
        from shorts_pipeline.resources.catalog import CatalogResource

        catalog = CatalogResource(url=f"sqlite:///{home / 'catalog.db'}")
        settings = ProjectSettings(**{**plan.settings, "library": str(self.library)})
        keys = [
            catalog.add_project(
                title, "ranking", keywords=list(plan.keywords), settings=settings
            ).key
            for title in titles
        ]
        dagster_home = home / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        (dagster_home / "dagster.yaml").write_text(DAGSTER_CONFIG)
        instance = dg.DagsterInstance.from_config(str(dagster_home))
        try:
            instance.add_dynamic_partitions("project", keys)
        finally:
            instance.dispose()
        return keys


class _shorts_home:
    """SHORTS_HOME pointed at `home` inside the block (the pipeline reads it at call time)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        for name in ("SHORTS_HOME", *ENV_DROP):
            self.saved[name] = os.environ.pop(name, None)
        os.environ["SHORTS_HOME"] = str(self.home)

    def __exit__(self, *exc: object) -> None:
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
    env["SHORTS_HOME"] = str(home)
    return env


def run_command(key: str, report: Path) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        *("--child", "run", "--key", key, "--report", str(report)),
    ]


def batch_command(mode: str, jobs: int, keys: Sequence[str], report_dir: Path) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        *("--child", "batch", "--mode", mode, "--jobs", str(jobs)),
        *("--keys", ",".join(keys), "--report-dir", str(report_dir)),
    ]


def read_report(path: Path) -> dict[str, Any]:
    report = json.loads(path.read_text())
    if report.get("exit_code") != 0:
        raise SystemExit(f"`shorts run {report.get('key')}` failed: {report.get('error')}")
    return report


def profile_run(home: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Where one `shorts run`'s wall time went: ffmpeg/ffprobe processes against the rest,
    per stage, from the child's process records and the run's event log."""
    import dagster as dg

    spawned, ended = report["spawned_at"], report["cli_returned_at"]
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    try:
        records = instance.get_run_records(
            filters=dg.RunsFilter(tags={"dagster/partition": report["key"]}), limit=1
        )
        # The command's own run, or none (a command may decide there is nothing to run).
        run = next(
            (r.dagster_run for r in records if r.create_timestamp.timestamp() >= spawned),
            None,
        )
        entries = instance.all_logs(run.run_id) if run is not None else []
    finally:
        instance.dispose()

    procs, intervals = _media_processes(report)
    others = [p for p in report["processes"] if p not in procs]
    wall = ended - spawned
    ffmpeg = _union(intervals)

    starts: dict[str, float] = {}
    steps: dict[str, dict[str, Any]] = {}
    first = min((e.timestamp for e in entries), default=ended)
    last = max((e.timestamp for e in entries), default=ended)
    for entry in entries:
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        kind = event.event_type_value
        if kind == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in starts:
            begin, end = starts[event.step_key], entry.timestamp
            inside = _union([(max(a, begin), min(b, end)) for a, b in intervals])
            steps[event.step_key] = {
                "seconds": round(end - begin, 3),
                "ffmpeg_s": round(inside, 3),
                "python_s": round(end - begin - inside, 3),
                "processes": sum(1 for a, b in intervals if a < end and b > begin),
                "status": "success" if kind == "STEP_SUCCESS" else "failure",
            }
    in_steps = sum(s["seconds"] for s in steps.values())
    startup = first - spawned
    wrap_up = ended - last
    by_label: dict[str, dict[str, Any]] = {}
    for p, (a, b) in zip(procs, intervals, strict=True):
        row = by_label.setdefault(p["label"], {"count": 0, "seconds": 0.0})
        row["count"] += 1
        row["seconds"] = round(row["seconds"] + max(0.0, b - a), 3)
    outside = wall - ffmpeg
    return {
        "key": report["key"],
        "run_id": run.run_id if run is not None else None,
        "run_status": run.status.value if run is not None else "no run",
        "wall_s": round(wall, 3),
        "ffmpeg_s": round(ffmpeg, 3),
        "outside_ffmpeg_s": round(outside, 3),
        "outside_share": round(outside / wall, 4) if wall > 0 else None,
        "processes": len(procs),
        "parts_s": {
            # spawn -> the run's first event: interpreter, imports, instance, catalog, lock
            "startup": round(startup - _union([(a, min(b, first)) for a, b in intervals]), 3),
            "stages_python": round(sum(s["python_s"] for s in steps.values()), 3),
            "dagster_between_stages": round(last - first - in_steps, 3),
            "wrap_up": round(wrap_up, 3),  # the run's last event -> the command returns
        },
        "run_events_s": round(last - first, 3),
        "steps": {s: steps[s] for s in (*STAGES, *sorted(set(steps) - set(STAGES))) if s in steps},
        "ffmpeg_by_label": dict(sorted(by_label.items(), key=lambda kv: -kv[1]["seconds"])),
        "other_processes": [p["label"] for p in others],  # not ffmpeg: counted as outside
    }


def wall_and_ffmpeg(report: dict[str, Any]) -> tuple[float, float]:
    """One run's wall time (spawn to the command's return) and the time ffmpeg/ffprobe
    processes were alive in it: what a batch reports per project, without the event log."""
    _, intervals = _media_processes(report)
    return report["cli_returned_at"] - report["spawned_at"], _union(intervals)


def _media_processes(
    report: dict[str, Any],
) -> tuple[list[dict[str, Any]], list[tuple[float, float]]]:
    spawned, ended = report["spawned_at"], report["cli_returned_at"]
    procs = [
        p
        for p in report["processes"]
        if p.get("end") is not None and p["label"].startswith(("ffmpeg", "ffprobe"))
    ]
    return procs, [(max(p["start"], spawned), min(p["end"], ended)) for p in procs]


def _union(intervals: Sequence[tuple[float, float]]) -> float:
    total, reach = 0.0, float("-inf")
    for a, b in sorted((a, b) for a, b in intervals if b > a):
        if b <= reach:
            continue
        total += b - max(a, reach)
        reach = b
    return total


# --- the children --------------------------------------------------------------------------


def _child_run(args: argparse.Namespace) -> int:
    """`shorts run KEY` in this process, every child process's life recorded."""
    spawned = float(os.environ.get("BENCH_SPAWNED_AT") or time.time())
    records: list[dict[str, Any]] = []
    _record_subprocesses(records)
    report: dict[str, Any] = {"key": args.key, "spawned_at": spawned, "processes": records}
    from shorts_pipeline.cli import main as cli

    report["imports_done_at"] = time.time()  # click, rich; Dagster is imported by the command
    code, error = 0, None
    try:
        cli.main(["run", args.key], prog_name="shorts", standalone_mode=False)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:  # a CommandError (unknown key) or a crash: say which
        code, error = 2, f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    report["cli_returned_at"] = time.time()
    report["exit_code"] = code
    report["error"] = error
    Path(args.report).write_text(json.dumps(report, indent=1))
    return code


def _record_subprocesses(records: list[dict[str, Any]]) -> None:
    """Wrap subprocess.Popen: start = just before the fork, end = when it is reaped (the
    pipeline waits for every process it starts, right away)."""
    popen = subprocess.Popen
    original_init = popen.__init__
    original_exit = popen._handle_exitstatus  # type: ignore[attr-defined]

    def init(self: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
        started = time.time()
        original_init(self, args, *rest, **kwargs)
        self._bench_record = {"label": _label(args), "start": started, "end": None}
        records.append(self._bench_record)

    def handle_exit(self: Any, status: Any, *rest: Any, **kwargs: Any) -> Any:
        record = getattr(self, "_bench_record", None)
        if record is not None and record["end"] is None:
            record["end"] = time.time()
        return original_exit(self, status, *rest, **kwargs)

    popen.__init__ = init  # type: ignore[method-assign]
    popen._handle_exitstatus = handle_exit  # type: ignore[attr-defined]


_HASH = re.compile(r"[0-9a-f]{32,}")
_NOISE = re.compile(r"\d+(-[0-9a-f]+)?|[0-9a-f]{6,}|tmp|partial")
_ANALYSIS = ("loudnorm", "ebur128", "blackdetect", "freezedetect", "silencedetect", "volumedetect")


def _label(args: Any) -> str:
    """'ffprobe', 'ffmpeg -> video.mp4', 'ffmpeg -> null [ebur128,blackdetect]', ..."""
    argv = [str(a) for a in args] if isinstance(args, list | tuple) else str(args).split()
    if not argv:
        return "?"
    name = Path(argv[0]).name
    if "ffmpeg" not in name:
        return name
    if "null" in argv:
        text = " ".join(argv)
        found = [f for f in _ANALYSIS if f in text]
        return f"{name} -> null [{','.join(found) or 'decode'}]"
    outputs = [
        a
        for before, a in itertools.pairwise(argv)
        if before != "-i" and a.endswith((".mp4", ".m4a", ".mov", ".jpg", ".png", ".wav", ".aac"))
    ]
    target = outputs[-1] if outputs else argv[-1]
    if target == "-" or target.startswith("pipe:"):
        return f"{name} -> pipe"
    return f"{name} -> {_clean(Path(target).name)}"


def _clean(name: str) -> str:
    """'video.mp4.20842-a515e6.mix.wav' -> 'video.mp4.mix.wav' (temp names made readable)."""
    kept: list[str] = []
    for index, part in enumerate(name.lstrip(".").split(".")):
        if _HASH.fullmatch(part):
            kept.append("<hash>")
        elif index == 0 or not _NOISE.fullmatch(part):
            kept.append(part)
    if len(kept) > 2 and kept[-1] == kept[-2]:  # 'video.mp4.partial.mp4'
        kept.pop()
    return ".".join(kept)


def _child_batch(args: argparse.Namespace) -> int:
    """Run `shorts run KEY` for every key: one at a time, or at most `jobs` alive at once."""
    keys = [k for k in args.keys.split(",") if k]
    jobs = 1 if args.mode == "serial" else args.jobs
    report_dir = Path(args.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    pending = list(enumerate(keys))
    alive: dict[int, tuple[int, str, subprocess.Popen[bytes], Any]] = {}
    failed: list[str] = []
    timings: list[dict[str, Any]] = []
    started = time.time()
    while pending or alive:
        while pending and len(alive) < jobs:
            index, key = pending.pop(0)
            log = (report_dir / f"{index:02d}.log").open("wb")
            env = {**os.environ, "BENCH_SPAWNED_AT": f"{time.time():.6f}"}
            cmd = run_command(key, report_dir / f"{index:02d}.json")
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
            alive[proc.pid] = (index, key, proc, log)
        pid, status = os.wait()  # whichever ends first; its rusage adds to ours
        if pid not in alive:
            continue
        index, key, proc, log = alive.pop(pid)
        log.close()
        proc.returncode = os.waitstatus_to_exitcode(status)
        timings.append({"index": index, "key": key, "exit": proc.returncode})
        if proc.returncode != 0:
            failed.append(key)
    summary = {"mode": args.mode, "jobs": jobs, "seconds": time.time() - started, "runs": timings}
    (report_dir / "batch.json").write_text(json.dumps(summary, indent=1))
    if failed:
        print(f"failed: {', '.join(failed)} (logs in {report_dir})", file=sys.stderr)
        return 1
    return 0


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", choices=("run", "batch"), required=True)
    parser.add_argument("--key")
    parser.add_argument("--report")
    parser.add_argument("--mode", choices=("serial", "concurrent"), default="serial")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keys", default="")
    parser.add_argument("--report-dir")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    return _child_run(args) if args.child == "run" else _child_batch(args)


if __name__ == "__main__":
    sys.exit(main())
