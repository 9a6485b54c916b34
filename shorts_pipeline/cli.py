"""The `shorts` command: register projects, render them, see where they stand.

Every command works on the same state as `dagster dev` (SHORTS_HOME): runs started here show
in the Dagster UI, and projects added here are partitions there. Exit codes: 0 done, 1 the
work failed (a render, a check), 2 the command was wrong (unknown key, bad option).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shorts_pipeline.home import dagster_home, library_dir, shorts_home
from shorts_pipeline.models import ProjectFormat, ProjectSettings, ProjectSpec

console = Console(stderr=True)
out = Console()

STAGES = [
    "search_results",
    "selections",
    "script",
    "narration",
    "slides",
    "segments",
    "video",
    "upload",
]
STAGE_LABELS = {
    "search_results": "search",
    "selections": "select",
    "script": "script",
    "narration": "voice",
    "slides": "slides",
    "segments": "segments",
    "video": "video",
    "upload": "upload",
}
# Progress-bar weight of each stage (the render dominates).
STAGE_WEIGHTS = {
    "search_results": 4,
    "selections": 8,
    "script": 3,
    "narration": 6,
    "slides": 4,
    "segments": 10,
    "video": 70,
    "upload": 5,
}


@dataclass(frozen=True)
class DemoProject:
    title: str
    format: str
    keywords: tuple[str, ...] = ()
    language: str = "en"
    source_text: str | None = None  # a file in shorts_pipeline/demo_texts
    settings: dict[str, Any] | None = None


DEMO_PROJECTS = [
    DemoProject("Top 5 football skills of the year", "ranking", ("football", "skills")),
    DemoProject(
        "축구 드리블, 이렇게 연습하세요",
        "explainer",
        ("football", "dribbling"),
        language="ko",
        source_text="ko_dribbling.md",
    ),
    # Offline, the extend format previews its plan as an animated storyboard.
    DemoProject(
        "A paper boat drifting down a rainy city street at dusk",
        "extend",
        settings={"extend": {"provider": "storyboard", "segment_count": 6}},
    ),
]


class CommandError(click.ClickException):
    exit_code = 2


@click.group()
@click.version_option(package_name="shorts-pipeline")
def main() -> None:
    """shorts — an automated short-video factory on Dagster."""
    from shorts_pipeline.locks import working

    _prepare_dagster_home()
    # A live worker while the command runs: its temp files are never taken for a crashed
    # run's leftovers by the sweep another run does when it starts.
    click.get_current_context().with_resource(working())


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def demo(as_json: bool) -> None:
    """Offline end to end: build the demo library, then make one video per demo project."""
    from shorts_pipeline.render.synth import make_demo_library

    library = library_dir()
    console.print(f"[bold]SHORTS_HOME[/] {shorts_home()}")
    with _bar("demo library") as (progress, task):
        make_demo_library(library, progress=lambda f: progress.update(task, completed=f * 100))
    catalog = _catalog()
    results = []
    for project in DEMO_PROJECTS:
        spec = _existing_or_new(catalog, project)
        console.print(f"[bold]project[/] {spec.key} — {escape(spec.title)}")
        results.append(_run_project(spec.key))
    failed = [r for r in results if not r["success"]]
    if as_json:
        out.print_json(json.dumps(results))
    else:
        for r in results:
            if r["success"]:
                click.echo(r["video_path"])  # plain: scripts read it
    if failed:
        sys.exit(1)


@main.command()
@click.argument("title")
@click.option(
    "--format",
    "fmt",
    type=click.Choice([f.value for f in ProjectFormat]),
    default="ranking",
    show_default=True,
)
@click.option("--keywords", multiple=True, help="Search keywords (repeat or comma-separate).")
@click.option("--library", type=click.Path(file_okay=False), help="Clip library folder.")
@click.option(
    "--search-source",
    type=click.Choice(["library", "youtube", "tiktok"]),
    default="library",
    show_default=True,
    help="Where to search: the local library, or YouTube through yt-dlp.",
)
@click.option(
    "--url", "urls", multiple=True, help="Video, playlist or channel URL to rank (repeat)."
)
@click.option("--count", type=click.IntRange(1, 10), default=5, show_default=True)
@click.option(
    "--language",
    help="Language of the script and voice (en, ko, …); default: guessed from the text, else en.",
)
@click.option(
    "--source-text",
    type=click.File("r", encoding="utf-8"),
    help="Explainer: the article, notes or training text to explain ('-' reads stdin).",
)
@click.option(
    "--writer",
    type=click.Choice(["offline", "openai"]),
    default="offline",
    show_default=True,
    help="Who writes the script: the offline writer or an OpenAI-compatible chat API.",
)
@click.option(
    "--voice-engine",
    type=click.Choice(["espeak", "gtts", "openai"]),
    default="espeak",
    show_default=True,
)
@click.option("--voice", help="Voice name of the engine (default: the language's voice).")
@click.option(
    "--target-seconds", type=click.FloatRange(5, 180), help="Spoken length the script aims for."
)
@click.option("--no-narration", is_flag=True, help="No voice (and so no subtitles).")
@click.option("--no-subtitles", is_flag=True, help="Do not burn subtitles in.")
@click.option("--fit", type=click.Choice(["cover", "contain"]), default="cover", show_default=True)
@click.option(
    "--transition",
    type=click.Choice(["fade", "slide", "wipe", "none"]),
    default="fade",
    show_default=True,
)
@click.option("--trim", type=click.Choice(["start", "middle"]), default="start", show_default=True)
@click.option(
    "--music", default="bundled", show_default=True, help="'bundled', a music file, or 'none'."
)
@click.option("--publish-at", help="ISO 8601 time, e.g. 2026-12-01T18:00:00+09:00.")
@click.option(
    "--publisher",
    type=click.Choice(["local", "youtube"]),
    default="local",
    show_default=True,
    help="Where the publish schedule publishes it (youtube needs YOUTUBE_* credentials).",
)
@click.option("--review", is_flag=True, help="Require approval before publishing.")
@click.option(
    "--provider",
    type=click.Choice(["storyboard", "fal"]),
    default="storyboard",
    show_default=True,
    help="Extend: who generates the segments (storyboard: an offline preview; fal: fal.ai, "
    "key from FAL_KEY).",
)
@click.option("--segments", type=click.IntRange(2, 10), help="Extend: how many segments.")
@click.option(
    "--segment-seconds", type=click.FloatRange(2, 12), help="Extend: seconds per segment."
)
@click.option("--aspect", type=click.Choice(["9:16", "16:9", "1:1"]), help="Extend: aspect.")
@click.option("--json", "as_json", is_flag=True)
def add(
    title: str,
    fmt: str,
    keywords: tuple[str, ...],
    library: str | None,
    search_source: str,
    urls: tuple[str, ...],
    count: int,
    language: str | None,
    source_text: Any,
    writer: str,
    voice_engine: str,
    voice: str | None,
    target_seconds: float | None,
    no_narration: bool,
    no_subtitles: bool,
    fit: str,
    transition: str,
    trim: str,
    music: str,
    publish_at: str | None,
    publisher: str,
    review: bool,
    provider: str,
    segments: int | None,
    segment_seconds: float | None,
    aspect: str | None,
    as_json: bool,
) -> None:
    """Register a project; prints its key."""
    from shorts_pipeline.resources.catalog import ProjectExistsError

    text = source_text.read() if source_text is not None else None
    if text is not None and fmt == ProjectFormat.ranking.value:
        raise CommandError(
            "--source-text is for explainers (the text) and extend videos (one action per "
            "sentence): add --format explainer or --format extend"
        )
    extend_options = provider, segments, segment_seconds, aspect
    if fmt != ProjectFormat.extend.value and extend_options != ("storyboard", None, None, None):
        raise CommandError(
            "--provider, --segments, --segment-seconds and --aspect are for --format extend"
        )
    if library and not Path(library).is_dir():
        raise CommandError(f"library folder {library} does not exist")
    if search_source == "tiktok" and not urls:
        raise CommandError(
            "TikTok has no keyword search in yt-dlp: pass TikTok video or profile URLs with --url"
        )
    bad = [u for u in urls if not u.startswith(("http://", "https://", "file://"))]
    if bad:
        raise CommandError(f"not a URL: {', '.join(bad)} (use http:// or https:// addresses)")
    when = _parse_time(publish_at) if publish_at else None
    words = [w.strip() for k in keywords for w in k.split(",") if w.strip()]
    from shorts_pipeline.models import ScriptSettings, SubtitleSettings, VoiceSettings

    script_settings = ScriptSettings(writer=writer)
    if target_seconds is not None:
        script_settings = script_settings.model_copy(update={"target_seconds": target_seconds})
    settings = ProjectSettings(
        count=count,
        language=language or _guess_language(f"{title} {text or ''}"),
        narration=not no_narration,
        script=script_settings,
        voice=VoiceSettings(engine=voice_engine, voice=voice),
        subtitles=SubtitleSettings(enabled=not no_subtitles),
        publisher=publisher,
        fit=fit,
        transition=transition,
        trim=trim,
        music=None if music == "none" else music,
        library=str(Path(library).resolve()) if library else None,
        search_source=search_source,
        urls=list(urls),
        extend=_extend_settings(provider, segments, segment_seconds, aspect),
    )
    try:
        spec = _catalog().add_project(
            title,
            fmt,
            keywords=words,
            settings=settings,
            publish_at=when,
            review=review,
            source_text=text,
        )
    except ProjectExistsError as err:
        raise CommandError(str(err)) from err
    except ValueError as err:
        raise CommandError(str(err)) from err
    _instance().add_dynamic_partitions("project", [spec.key])
    if as_json:
        out.print_json(spec.model_dump_json())
    else:
        click.echo(spec.key)


@main.command()
@click.argument("key")
@click.option(
    "--resume",
    is_flag=True,
    help="Only the stages the last run did not finish (it failed, was cancelled or killed); "
    "everything before them is reused.",
)
@click.option("--json", "as_json", is_flag=True)
def run(key: str, resume: bool, as_json: bool) -> None:
    """Materialise the whole graph for one project, with a progress bar."""
    _project(key)
    result = _run_project(key, resume=resume)
    if as_json:
        out.print_json(json.dumps(result))
    elif result["success"]:
        click.echo(result["video_path"])
    if not result["success"]:
        sys.exit(1)


@main.command()
@click.argument("key", required=False)
@click.option("--json", "as_json", is_flag=True)
def status(key: str | None, as_json: bool) -> None:
    """A table of projects and the state of each stage (or one project in detail)."""
    catalog = _catalog()
    projects = [_project(key)] if key else catalog.list_projects()
    instance = _instance()
    rows = [(p, _stage_states(instance, p.key)) for p in projects]
    if as_json:
        payload = [
            {
                "key": p.key,
                "title": p.title,
                "format": p.format.value,
                "status": p.status.value,
                "stages": states,
                "error": catalog.last_error(p.key),
                "publish_at": p.publish_at.isoformat() if p.publish_at else None,
                "review": catalog.review(p.key).state if p.review else None,
                "published": [
                    {"publisher": r.publisher, "state": r.state, "url": r.url}
                    for r in catalog.publications(p.key)
                ],
            }
            for p, states in rows
        ]
        out.print_json(json.dumps(payload, default=str))
        return
    table = Table(title=f"projects in {shorts_home()}")
    table.add_column("key", no_wrap=True)
    table.add_column("title", max_width=28, overflow="ellipsis", no_wrap=True)
    table.add_column("format")
    table.add_column("status")
    for stage in STAGES:
        table.add_column(STAGE_LABELS[stage], justify="center")
    for p, states in rows:
        marks = (_mark(states[s]) for s in STAGES)
        table.add_row(p.key, escape(p.title), p.format.value, p.status.value, *marks)
    out.print(table)
    if key:
        error = catalog.last_error(key)
        if error:
            out.print(f"[red]last error:[/] {escape(error)}")
        _print_candidates(key)


@main.command()
@click.argument("key")
@click.argument("clip_ids", nargs=-1)
@click.option("--auto", is_flag=True, help="Return to automatic ranking.")
def select(key: str, clip_ids: tuple[str, ...], auto: bool) -> None:
    """Fix the clips and their ranking: the first id is #1. `--auto` undoes it."""
    spec = _project(key)
    if auto:
        _catalog().set_selection(spec.key, None)
        out.print(f"{key}: automatic ranking")
        return
    if not clip_ids:
        raise CommandError("give the clip ids in ranking order (#1 first), or --auto")
    if len(set(clip_ids)) != len(clip_ids):
        raise CommandError("a clip id is given twice")
    known = _candidate_ids(key)
    if known is not None:
        unknown = [c for c in clip_ids if c not in known]
        if unknown:
            raise CommandError(
                f"not among {key}'s search results: {', '.join(unknown)} "
                f"(`shorts status {key}` lists them)"
            )
    _catalog().set_selection(spec.key, list(clip_ids))
    out.print(f"{key}: {len(clip_ids)} clips fixed; `shorts run {key}` renders them")


@main.command()
@click.argument("key")
@click.option(
    "--edit",
    "edit_file",
    type=click.File("r", encoding="utf-8"),
    help="Replace the script with this file (VideoScript JSON, as `--json` prints it).",
)
@click.option("--reset", is_flag=True, help="Forget the edit: the writer writes it again.")
@click.option("--no-run", is_flag=True, help="Store the edit without re-rendering.")
@click.option("--json", "as_json", is_flag=True, help="Print the script as JSON.")
def script(key: str, edit_file: Any, reset: bool, no_run: bool, as_json: bool) -> None:
    """Show the project's script, or replace it (`--edit FILE`): the narration, slides, video
    and upload of that project are then made again from the new script."""
    from pydantic import ValidationError

    from shorts_pipeline.models import VideoScript

    spec = _project(key)
    catalog = _catalog()
    if edit_file is not None or reset:
        if edit_file is not None:
            try:
                edited = VideoScript.model_validate_json(edit_file.read())
            except ValidationError as err:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'script'}: {e['msg']}"
                    for e in err.errors()[:5]
                )
                raise CommandError(f"{edit_file.name} is not a valid script: {problems}") from err
            if spec.format is ProjectFormat.extend:
                from shorts_pipeline.resources.segment_plan import plan_problems

                wrong = plan_problems(edited, spec.settings.extend)
                if wrong:
                    raise CommandError(f"{edit_file.name}: {'; '.join(wrong)}")
            catalog.set_script_override(
                spec.key, edited.model_copy(update={"writer": "edited"}), handled=not no_run
            )
            console.print(f"{key}: script replaced ({len(edited.scenes())} scenes)")
        else:
            catalog.set_script_override(spec.key, None, handled=not no_run)
            console.print(f"{key}: the edit is forgotten; the writer writes the script again")
        if no_run:
            return
        result = _run_project(key, selection=STAGES[STAGES.index("script") :])
        if result["success"]:
            click.echo(result["video_path"])
        sys.exit(0 if result["success"] else 1)
    current = catalog.script_override(spec.key) or _load_asset("script", key)
    if current is None:
        raise CommandError(f"{key} has no script yet: `shorts run {key}` writes one")
    if as_json:
        click.echo(current.model_dump_json(indent=2))
    else:
        click.echo(current.to_markdown())


@main.command()
@click.argument("key")
@click.option("--by", help="Who approves (default: $USER).")
def approve(key: str, by: str | None) -> None:
    """Approve a rendered video for publishing (projects added with --review)."""
    _review(key, "approved", by, None)


@main.command()
@click.argument("key")
@click.option("--reason", required=True, help="Why: kept with the decision.")
@click.option("--by", help="Who rejects (default: $USER).")
def reject(key: str, reason: str, by: str | None) -> None:
    """Reject a rendered video: it is not published; `shorts run KEY` renders it again for
    another review."""
    _review(key, "rejected", by, reason)


@main.command("publish-due")
@click.option("--json", "as_json", is_flag=True)
def publish_due(as_json: bool) -> None:
    """Publish every video that is due now, once — what the publish schedule does each minute."""
    from shorts_pipeline.assets.publication import due_projects

    due = due_projects(_catalog(), datetime.now(UTC))
    results = []
    for project, _attempts in due:
        results.append(_publish_project(project.key))
    if as_json:
        out.print_json(json.dumps(results))
    else:
        if not results:
            console.print("nothing is due")
        for r in results:
            if r["success"]:
                click.echo(r["url"])
    if any(not r["success"] for r in results):
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True)
def doctor(as_json: bool) -> None:
    """Check ffmpeg, fonts, speech, storage and the catalog; say how to fix each problem.
    Also removes the temp files that interrupted runs left behind."""
    from shorts_pipeline.doctor import run_checks

    swept = _sweep_leftovers()
    if swept and not as_json:
        console.print(f"removed {swept} temp files left by interrupted runs")
    checks = run_checks()
    if as_json:
        out.print_json(json.dumps([c.__dict__ for c in checks]))
    else:
        for c in checks:
            mark = (
                "[green]ok[/]"
                if c.ok
                else ("[yellow]warn[/]" if not c.required else "[red]FAIL[/]")
            )
            out.print(f"{mark:>18}  {c.name}: {c.detail}")
            if not c.ok and c.fix:
                out.print(f"        fix: {c.fix}")
    if any(c.required and not c.ok for c in checks):
        sys.exit(1)


# ---- helpers ---------------------------------------------------------------------------


# What earlier versions wrote: replaced by DAGSTER_CONFIG when found unchanged.
_OLD_DAGSTER_CONFIGS = (
    "telemetry:\n  enabled: false\n"
    "concurrency:\n"
    "  runs:\n    max_concurrent_runs: 2\n"
    "  pools:\n    default_limit: 2\n",
)
DAGSTER_CONFIG = """\
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 2
    # One run per project at a time: a second run of a project waits in the queue (the
    # queued run coordinator of `dagster dev`) instead of racing the first on its files.
    # Runs lock their project themselves too (shorts_pipeline/locks.py), which also covers
    # `shorts run` (it executes in-process, outside the queue).
    tag_concurrency_limits:
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    default_limit: 2
"""


def _prepare_dagster_home() -> None:
    """Point Dagster at SHORTS_HOME/dagster (unless DAGSTER_HOME is set) with our settings."""
    home = dagster_home()
    os.environ["DAGSTER_HOME"] = str(home)
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text() in _OLD_DAGSTER_CONFIGS:
        config.write_text(DAGSTER_CONFIG)


def _instance():
    import dagster as dg

    return dg.DagsterInstance.get()


def _catalog():
    from shorts_pipeline.resources.catalog import CatalogResource

    return CatalogResource()


def _project(key: str) -> ProjectSpec:
    from shorts_pipeline.keys import UnsafeKeyError
    from shorts_pipeline.resources.catalog import ProjectNotFoundError

    try:
        return _catalog().get_project(key)
    except (ProjectNotFoundError, UnsafeKeyError) as err:
        raise CommandError(str(err)) from err


def _extend_settings(
    provider: str, segments: int | None, seconds: float | None, aspect: str | None
) -> Any:
    from shorts_pipeline.models import ExtendSettings

    values: dict[str, Any] = {"provider": provider}
    if segments is not None:
        values["segment_count"] = segments
    if seconds is not None:
        values["segment_seconds"] = seconds
    if aspect is not None:
        values["aspect"] = aspect
    try:
        return ExtendSettings(**values)
    except ValueError as err:
        raise CommandError(str(err)) from err


def _existing_or_new(catalog: Any, project: DemoProject) -> ProjectSpec:
    from importlib import resources

    from shorts_pipeline.keys import project_key
    from shorts_pipeline.resources.catalog import ProjectNotFoundError

    key = project_key(project.title, project.format)
    try:
        spec = catalog.get_project(key)
    except ProjectNotFoundError:
        text = None
        if project.source_text:
            text = (
                resources.files("shorts_pipeline.demo_texts")
                .joinpath(project.source_text)
                .read_text(encoding="utf-8")
            )
        spec = catalog.add_project(
            project.title,
            project.format,
            keywords=list(project.keywords),
            settings=ProjectSettings(language=project.language, **(project.settings or {})),
            source_text=text,
        )
    _instance().add_dynamic_partitions("project", [spec.key])
    return spec


def _run_project(
    key: str, selection: list[str] | None = None, resume: bool = False
) -> dict[str, Any]:
    """Run the production job (or the `selection` of its assets; with `resume`, the stages
    the last run did not finish) for one partition in this process, showing its progress.
    Refused when another run of the project is going on."""
    from shorts_pipeline.locks import ProjectBusyError, project_lock

    run_id = str(uuid.uuid4())
    try:
        with project_lock(key, run_id):
            return _run_locked(key, run_id, selection, resume)
    except ProjectBusyError as err:
        console.print(f"[red]busy[/] {escape(str(err))}", soft_wrap=True)
        return {"key": key, "success": False, "error": str(err)}


def _run_locked(key: str, run_id: str, selection: list[str] | None, resume: bool) -> dict[str, Any]:
    import dagster as dg

    from shorts_pipeline.definitions import defs
    from shorts_pipeline.models import ProjectStatus

    instance = _instance()
    instance.add_dynamic_partitions("project", [key])
    _close_dead_runs(instance, key)
    tags = {"shorts/source": "cli", "shorts/pid": str(os.getpid())}
    if resume:
        last, selection = _resume_selection(instance, key)
        if last is not None and not selection:
            return _nothing_to_resume(key, last)
        if last is not None:
            tags["shorts/resumed_from"] = last.run_id
            first = min(STAGES.index(s) for s in selection or STAGES)
            done = [STAGE_LABELS[s] for s in STAGES[:first]]
            console.print(
                f"[bold]resuming[/] {key} from run {last.run_id[:8]}: "
                f"reusing {', '.join(done) or 'nothing'}; running "
                f"{', '.join(STAGE_LABELS[s] for s in selection or STAGES)}",
                soft_wrap=True,
            )
    job = defs.resolve_job_def("produce_project")
    catalog = _catalog()
    catalog.set_status(key, ProjectStatus.running)
    started = time.monotonic()
    done_event = threading.Event()
    cancelled = threading.Event()
    # Dagster runs on the main thread, where it turns Ctrl-C into a clean interruption of
    # the step (ffmpeg is killed, temp files removed); the bar follows the event log beside
    # it, and turns a Terminate from the Dagster UI into the same interruption. A SIGTERM
    # (`kill`, a service manager) is handled like Ctrl-C, as Dagster's own processes do.
    with _bar(key) as (progress, task), _sigterm_as_interrupt():
        follower = threading.Thread(
            target=_follow_run,
            args=(instance, run_id, done_event, progress, task, selection, cancelled),
            daemon=True,
        )
        follower.start()
        try:
            result = job.execute_in_process(
                partition_key=key,
                asset_selection=[dg.AssetKey(a) for a in selection] if selection else None,
                instance=instance,
                run_id=run_id,
                raise_on_error=False,
                tags=tags,
                # The bar shows progress, and a failure is one line below it: Dagster's
                # console lines (a traceback per failure) would bury both. Every event is
                # still in the run's event log, which the UI shows.
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            )
        except KeyboardInterrupt:
            why = "cancelled from the Dagster UI" if cancelled.is_set() else "interrupted"
            catalog.set_status(key, ProjectStatus.failed, f"{why}; nothing half-written was kept")
            console.print(f"[red]{why}[/] {key}: nothing half-written was kept", soft_wrap=True)
            sys.exit(130)
        finally:
            done_event.set()
            follower.join(timeout=5)
    elapsed = time.monotonic() - started
    payload: dict[str, Any] = {
        "key": key,
        "run_id": run_id,
        "success": result.success,
        "seconds": round(elapsed, 1),
    }
    if result.success:
        record = result.output_for_node("video") if _ran(result, "video") else None
        record = record or _load_asset("video", key)
        upload = result.output_for_node("upload") if _ran(result, "upload") else None
        upload = upload or _load_asset("upload", key)
        payload.update(_video_fields(record, upload))
        console.print(
            f"[green]done[/] {key}: {record.duration:.1f} s video, rendered in "
            f"{record.render_seconds:.1f} s, whole run {elapsed:.1f} s"
        )
    elif cancelled.is_set():  # Dagster stopped the step and ended the run CANCELED
        message = "cancelled from the Dagster UI; nothing half-written was kept"
        payload["error"] = message
        catalog.set_status(key, ProjectStatus.failed, message)
        console.print(f"[red]cancelled from the Dagster UI[/] {key}: nothing half-written was kept")
    else:
        message = _failure_message(result)
        payload["error"] = message
        catalog.set_status(key, ProjectStatus.failed, message)
        console.print(f"[red]failed[/] {key}: {escape(message)}", soft_wrap=True)
        console.print(
            f"fix it, then `shorts run {key} --resume` runs the failed stage again and "
            f"reuses every stage before it (details: `shorts status {key}`, the Dagster UI)",
            soft_wrap=True,
        )
    return payload


def _ran(result: Any, node: str) -> bool:
    return any(e.is_successful_output and e.step_key == node for e in result.all_events)


def _video_fields(record: Any, upload: Any) -> dict[str, Any]:
    from shorts_pipeline.resources.media_store import MediaStoreResource

    store = MediaStoreResource()
    return {
        "video_path": str(store.local_path(record.media_key)) if store.is_local else upload.url,
        "url": upload.url,
        "duration": record.duration,
        "loudness_lufs": record.loudness_lufs,
        "render_seconds": record.render_seconds,
    }


def _resume_selection(instance: Any, key: str) -> tuple[Any, list[str] | None]:
    """The project's last production run, and the stages it selected but did not finish
    (None: all); (None, None) when it has no run yet."""
    import dagster as dg

    runs = instance.get_runs(
        filters=dg.RunsFilter(job_name="produce_project", tags={"dagster/partition": key}),
        limit=1,
    )
    if not runs:
        return None, None
    last = runs[0]
    if last.status == dg.DagsterRunStatus.SUCCESS:
        return last, []
    selected = {k.to_user_string() for k in last.asset_selection} if last.asset_selection else None
    finished = {
        record.event_log_entry.dagster_event.step_key
        for record in instance.get_records_for_run(
            last.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS
        ).records
    }
    todo = [s for s in STAGES if (selected is None or s in selected) and s not in finished]
    # Nothing failed inside a stage (the run died between two): run what it selected.
    return last, todo or (sorted(selected, key=STAGES.index) if selected else None)


def _nothing_to_resume(key: str, last: Any) -> dict[str, Any]:
    record, upload = _load_asset("video", key), _load_asset("upload", key)
    console.print(f"{key}: the last run ({last.run_id[:8]}) succeeded; nothing to resume")
    payload: dict[str, Any] = {"key": key, "run_id": last.run_id, "success": True}
    if record is not None and upload is not None:
        payload.update(_video_fields(record, upload))
    return payload


def _close_dead_runs(instance: Any, key: str) -> None:
    """Mark the project's CLI runs that never ended as failed (or cancelled): their process
    died (SIGKILL, a crash, the machine) before it could tell Dagster. Sure, because a CLI
    run holds the project's lock while it lives, and the caller holds it now."""
    import dagster as dg

    unfinished = instance.get_runs(
        filters=dg.RunsFilter(
            tags={"dagster/partition": key, "shorts/source": "cli"},
            statuses=[
                dg.DagsterRunStatus.NOT_STARTED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
                dg.DagsterRunStatus.CANCELING,
            ],
        )
    )
    for run in unfinished:
        pid = run.tags.get("shorts/pid", "?")
        if run.status == dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, message=f"its process (pid {pid}) is gone")
        else:
            instance.report_run_failed(
                run,
                message=(
                    f"the process running it (pid {pid}) died before the run ended (killed "
                    f"or crashed); `shorts run {key} --resume` continues where it stopped"
                ),
            )


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Inside the block, SIGTERM is passed on as SIGINT (main thread only): Dagster then
    interrupts the step at a safe point, as it does for Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _sweep_leftovers() -> int:
    from shorts_pipeline.home import cache_dir
    from shorts_pipeline.locks import sweep_stale_temp
    from shorts_pipeline.resources.media_store import MediaStoreResource

    try:
        root = MediaStoreResource().local_root
    except Exception:  # an unreachable store is for doctor's checks to report
        root = None
    return len(sweep_stale_temp(cache_dir(), also=[root] if root else []))


def _follow_run(
    instance: Any,
    run_id: str,
    done: threading.Event,
    progress: Progress,
    task: Any,
    selection: list[str] | None = None,
    cancelled: threading.Event | None = None,
) -> None:
    """Drive the bar from the run's event log: steps done, and ffmpeg's progress inside.
    When the run is terminated from the Dagster UI (it is then CANCELING), interrupt the
    main thread as Ctrl-C would: the UI can only mark an in-process run, not reach it."""
    from dagster import DagsterEventType, DagsterRunStatus

    cursor = None
    done_steps = 0
    render_fraction = 0.0
    stages = selection or STAGES
    scale = 100 / sum(STAGE_WEIGHTS[s] for s in stages)
    weights = {s: STAGE_WEIGHTS[s] * scale for s in stages}
    finished: set[str] = set()
    current = ""
    while True:
        alive = not done.is_set()
        try:
            conn = instance.get_records_for_run(run_id, cursor=cursor)
        except Exception:  # the run may not be stored yet
            conn = None
        if conn is not None:
            cursor = conn.cursor
            for record in conn.records:
                entry = record.event_log_entry
                event = entry.dagster_event
                if event is None:
                    message = entry.user_message or ""
                    if message.startswith("render progress"):
                        with contextlib.suppress(ValueError):
                            render_fraction = float(message.split()[-1].rstrip("%")) / 100
                    continue
                step = event.step_key or ""
                if event.event_type == DagsterEventType.STEP_START:
                    current = step
                elif event.event_type == DagsterEventType.STEP_SUCCESS:
                    finished.add(step)
                    done_steps += 1
        total = float(sum(weights.get(s, 0) for s in finished))
        if current == "video" and "video" not in finished:
            total += weights["video"] * render_fraction
        progress.update(task, completed=total, description=f"{current or 'starting'}")
        if not alive:
            break
        if cancelled is not None and not cancelled.is_set():
            run = instance.get_run_by_id(run_id)
            if run is not None and run.status == DagsterRunStatus.CANCELING:
                cancelled.set()
                os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)
    progress.update(task, completed=100 if done_steps == len(weights) else total)


def _failure_message(result: Any) -> str:
    """One line: the failed stage and why (the first line of the error, without its
    exception class); the whole error stays in the run's event log for the UI."""
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            err = data.error
            user = getattr(data, "user_failure_data", None)
            if user is not None and user.description:
                return f"{event.step_key}: {_one_line(user.description)}"
            if err is not None and err.cls_name == "DagsterExecutionInterruptedError":
                return f"{event.step_key}: interrupted by the user; nothing half-written was kept"
            if err is not None:
                cause = err.cause or err
                return f"{event.step_key}: {_one_line(cause.message)}"
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if not data.passed:
                return f"check {data.check_name} failed"
    for event in result.all_events:  # e.g. a resource that could not start
        if event.event_type_value == "PIPELINE_FAILURE" and event.message:
            return _one_line(event.message)
    return "the run failed; open the Dagster UI for details"


_EXCEPTION_PREFIX = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Failure)\w*: ")
_OS_ERROR = re.compile(r"\[Errno (\d+)\] [^:]*(?:: '(.*)')?")


def _one_line(message: str) -> str:
    """The first non-empty line of `message`, without a leading exception class; a bare
    OSError about a full disk is said in words."""
    import errno

    from shorts_pipeline.render.ffmpeg_run import DISK_ERRNOS, disk_problem

    line = next((ln.strip() for ln in message.splitlines() if ln.strip()), message.strip())
    line = _EXCEPTION_PREFIX.sub("", line)
    found = _OS_ERROR.search(line)
    if found and int(found.group(1)) in DISK_ERRNOS:
        return disk_problem(int(found.group(1)), found.group(2) or str(shorts_home()))
    if found and int(found.group(1)) == errno.EACCES:
        return f"{line} (check the folder's permissions)"
    return line[:500]


def _review(
    key: str, state: Literal["approved", "rejected"], by: str | None, reason: str | None
) -> None:
    from shorts_pipeline.review import ReviewError, record_review

    try:
        who = record_review(_catalog(), key, state, by=by, reason=reason)
    except ReviewError as err:
        raise CommandError(str(err)) from err
    console.print(f"{key}: {state} by {escape(who)}" + (f" — {escape(reason)}" if reason else ""))


def _publish_project(key: str) -> dict[str, Any]:
    """Run the publish job for one project in this process."""
    from shorts_pipeline.definitions import defs

    instance = _instance()
    job = defs.resolve_job_def("publish_project")
    result = job.execute_in_process(
        partition_key=key,
        instance=instance,
        raise_on_error=False,
        tags={"shorts/source": "cli"},
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )
    payload: dict[str, Any] = {"key": key, "success": result.success}
    if result.success:
        record = result.output_for_node("publication")
        payload.update(url=record.url, platform=record.platform, video_id=record.video_id)
        console.print(f"[green]published[/] {key}: {record.url}")
    else:
        payload["error"] = _failure_message(result)
        console.print(f"[red]not published[/] {key}: {escape(payload['error'])}")
    return payload


def _stage_states(instance: Any, key: str) -> dict[str, str | None]:
    import dagster as dg

    states: dict[str, str | None] = {}
    for stage in STAGES:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(stage), asset_partitions=[key]), limit=1
        ).records
        states[stage] = (
            datetime.fromtimestamp(records[0].timestamp, UTC).isoformat(timespec="seconds")
            if records
            else None
        )
    return states


def _mark(value: str | None) -> str:
    return "[green]✓[/]" if value else "[dim]–[/]"


def _candidate_ids(key: str) -> set[str] | None:
    frame = _load_search_results(key)
    return None if frame is None else set(frame["id"])


def _load_search_results(key: str) -> Any:
    return _load_asset("search_results", key)


def _load_asset(asset: str, key: str) -> Any:
    import io

    import dagster as dg

    from shorts_pipeline.definitions import defs

    # Loading logs every step at DEBUG on stderr through a console logger made for the call.
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            return defs.load_asset_value(
                dg.AssetKey(asset), partition_key=key, instance=_instance()
            )
    except Exception:  # not materialised yet
        return None


def _guess_language(text: str) -> str:
    """ko when most letters are Hangul, else en (pass --language for anything else)."""
    letters = [ch for ch in text if ch.isalpha()]
    hangul = sum(1 for ch in letters if "\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff")
    return "ko" if letters and hangul / len(letters) > 0.3 else "en"


def _print_candidates(key: str) -> None:
    frame = _load_search_results(key)
    if frame is None:
        out.print("no search results yet: `shorts run KEY` searches first")
        return
    table = Table(title="candidates (ids for `shorts select`)")
    for col in ["id", "title", "duration", "views", "likes"]:
        table.add_column(col)
    for row in frame.itertuples():
        table.add_row(
            escape(str(row.id)),
            escape(str(row.title)[:50]),
            f"{row.duration:.1f}" if row.duration == row.duration and row.duration else "?",
            str(row.views),
            str(row.likes),
        )
    out.print(table)


def _bar(label: str):
    from contextlib import contextmanager

    @contextmanager
    def cm():
        progress = Progress(
            TextColumn(f"[bold]{label}[/]"),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=not console.is_terminal and not os.environ.get("SHORTS_PROGRESS"),
        )
        with progress:
            task = progress.add_task("", total=100)
            yield progress, task

    return cm()


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as err:
        raise CommandError(
            f"--publish-at {text!r} is not an ISO 8601 time (e.g. 2026-12-01T18:00:00+09:00)"
        ) from err
    return value if value.tzinfo else value.astimezone()


if __name__ == "__main__":
    main()
