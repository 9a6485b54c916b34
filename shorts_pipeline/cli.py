"""The `shorts` command: register projects, render them, see where they stand.

Every command works on the same state as `dagster dev` (SHORTS_HOME): runs started here show
in the Dagster UI, and projects added here are partitions there.

Output: results on stdout (a key, a video path, a table), everything else on stderr. With
`--json`, stdout holds one JSON document and nothing else; its keys are listed in each
command's help and only ever grow. Progress bars (per stage, with ffmpeg's own progress
inside the render) are drawn on stderr only when it is an interactive terminal: in a pipe, a
CI log or with TERM=dumb they are left out, so no control codes reach a log.

Exit codes (EXIT_CODES below, and the end of `shorts --help`):
  0    done (also when there is nothing to do: nothing due, nothing to resume)
  1    the work failed: a stage or a blocking check, a publication, a required `doctor`
       check, or SHORTS_HOME cannot be used
  2    the command was wrong: a bad option, an unknown or unsafe key, a title that exists,
       nothing to review, a port that is taken
  3    busy: another run of the project is going on; try again when it has finished
  130  interrupted: Ctrl-C, SIGTERM or Terminate in the Dagster UI; nothing half-written is
       kept, and `shorts run KEY --resume` continues
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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from shorts_pipeline.home import dagster_home, library_dir, shorts_home
from shorts_pipeline.models import ProjectFormat, ProjectSettings, ProjectSpec


def _consoles() -> tuple[Console, Console]:
    """stderr for messages (never wrapped: a log line stays one line, and greppable) and
    stdout for results. Rich reads COLUMNS once, when a Console is made, so the group makes
    them again for every command: the width follows the terminal the command runs in, not
    the environment the module was imported in."""
    return Console(stderr=True, soft_wrap=True), Console()


console, out = _consoles()

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
# `shorts demo --quick`: the same three kinds of video, each about 15 s, from the same
# library and text; own titles (so own projects), so neither run takes the other's videos.
QUICK_DEMO_PROJECTS = [
    DemoProject(
        "Top 3 football skills of the year",
        "ranking",
        ("football", "skills"),
        settings={"count": 3, "clip_min_seconds": 3.0, "clip_max_seconds": 3.5},
    ),
    DemoProject(
        "축구 드리블 한눈에 보기",
        "explainer",
        ("football", "dribbling"),
        language="ko",
        source_text="ko_dribbling.md",
        settings={"script": {"target_seconds": 14}},
    ),
    DemoProject(
        "A paper boat on a rainy street",
        "extend",
        settings={"extend": {"provider": "storyboard", "segment_count": 3}},
    ),
]


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BUSY = 3
EXIT_INTERRUPTED = 130
EXIT_CODES = {
    EXIT_OK: "done (also when there was nothing to do)",
    EXIT_FAILED: "failed: a stage, a check, a publication, doctor, SHORTS_HOME",
    EXIT_USAGE: "wrong command: bad option, unknown key, existing title, port taken",
    EXIT_BUSY: "busy: another run of the project is going on; try again later",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C, SIGTERM, UI Terminate); nothing half-written kept",
}
# How a run ended (the `outcome` of its JSON) -> the exit code it gives. When one command
# runs several projects (`demo`), the first of these that occurred is its exit code.
OUTCOME_EXIT = {
    "interrupted": EXIT_INTERRUPTED,
    "cancelled": EXIT_INTERRUPTED,
    "failed": EXIT_FAILED,
    "busy": EXIT_BUSY,
    "done": EXIT_OK,
}


class CommandError(click.ClickException):
    """The command was wrong (exit 2): the message says what to change."""

    exit_code = EXIT_USAGE


class HomeError(click.ClickException):
    """SHORTS_HOME (or DAGSTER_HOME) cannot be used: nothing can run (exit 1)."""

    exit_code = EXIT_FAILED


class ShortsGroup(click.Group):
    """The command group: fresh consoles for each command, and a Ctrl-C anywhere exits 130
    (click's default is 1, 'Aborted!')."""

    def invoke(self, ctx: click.Context) -> Any:
        global console, out
        console, out = _consoles()
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            console.print("[red]interrupted[/]")
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None


def _epilog() -> str:
    lines = [f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items()]
    return (
        "\b\nExit codes:\n"
        + "\n".join(lines)
        + (
            "\n\n\bWith --json, stdout is one JSON document (keys in each command's help).\n"
            "Progress bars go to stderr, only on an interactive terminal."
        )
    )


@click.group(cls=ShortsGroup, epilog=_epilog())
@click.version_option(package_name="shorts-pipeline")
def main() -> None:
    """shorts — an automated short-video factory on Dagster."""
    from shorts_pipeline.locks import working

    ctx = click.get_current_context()
    try:
        _prepare_dagster_home()
        # A live worker while the command runs: its temp files are never taken for a crashed
        # run's leftovers by the sweep another run does when it starts.
        ctx.with_resource(working())
    except OSError as err:
        if ctx.invoked_subcommand == "doctor":
            return  # doctor reports it, with the fix
        raise HomeError(
            f"cannot use SHORTS_HOME ({os.environ.get('SHORTS_HOME') or '.shorts'}): {err}; "
            "set SHORTS_HOME to a writable folder (`shorts doctor` checks the rest)"
        ) from err


def _exit_code(results: list[dict[str, Any]]) -> int:
    """The exit code of runs that ended with these outcomes (OUTCOME_EXIT, worst first)."""
    outcomes = {r.get("outcome", "done" if r.get("success") else "failed") for r in results}
    return next((OUTCOME_EXIT[o] for o in OUTCOME_EXIT if o in outcomes), EXIT_OK)


def _print_json(payload: Any) -> None:
    """The one JSON document of a `--json` command, alone on stdout."""
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False, default=str))


# The `--json` of every command that runs the production job (run, demo, script --edit).
RUN_JSON_HELP = """\b
--json: one object:
  key, run_id, success (true|false),
  outcome (done|failed|busy|interrupted|cancelled), seconds,
  error (unless done); when done also video_path, url,
  duration, loudness_lufs, render_seconds"""


RUN_HELP = f"""Materialise the whole graph for one project; prints the video's path. On a
terminal, a progress bar per stage, with ffmpeg's progress inside the render.

{RUN_JSON_HELP}"""
DEMO_HELP = f"""Offline end to end: build the demo library, then make one video per demo
project (a ranking, a Korean explainer, an extend storyboard); prints the videos' paths.

{RUN_JSON_HELP.replace("one object", "a list, one object per project")}"""


@main.command(help=DEMO_HELP)
@click.option(
    "--quick",
    is_flag=True,
    help="About 15 s per video (a top 3, a short explainer, three segments): a first look.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def demo(quick: bool, as_json: bool) -> None:
    from shorts_pipeline.render.synth import make_demo_library

    library = library_dir()
    console.print(f"[bold]SHORTS_HOME[/] {shorts_home()}")
    with _bar("library") as (progress, task):
        make_demo_library(library, progress=lambda f: progress.update(task, completed=f * 100))
        progress.update(task, mark=_MARKS["done"], ended=time.time(), detail="demo clips")
    catalog = _catalog()
    results = []
    for project in QUICK_DEMO_PROJECTS if quick else DEMO_PROJECTS:
        spec = _existing_or_new(catalog, project)
        console.print(f"[bold]project[/] {spec.key} — {escape(spec.title)}", soft_wrap=True)
        results.append(_run_project(spec.key, header=False))
        if results[-1]["outcome"] in ("interrupted", "cancelled"):
            break  # the user asked to stop: not the next project either
    if as_json:
        _print_json(results)
    else:
        for r in results:
            if r["success"]:
                click.echo(r["video_path"])  # plain: scripts read it
    sys.exit(_exit_code(results))


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
@click.option("--json", "as_json", is_flag=True, help="Print the project as JSON.")
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
    """Register a project; prints its key.

    \b
    --json: the project as stored: key, title, format, keywords,
      settings, publish_at, review, status, selected_clip_ids,
      source_text, created_at
    """
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
        _print_json(spec.model_dump(mode="json"))
    else:
        click.echo(spec.key)


@main.command(help=RUN_HELP)
@click.argument("key")
@click.option(
    "--resume",
    is_flag=True,
    help="Only the stages the last run did not finish (it failed, was cancelled or killed); "
    "everything before them is reused.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def run(key: str, resume: bool, as_json: bool) -> None:
    _project(key)
    result = _run_project(key, resume=resume)
    if as_json:
        _print_json(result)
    elif result["success"]:
        click.echo(result["video_path"])
    sys.exit(_exit_code([result]))


@main.command()
@click.argument("key", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the projects as JSON.")
def status(key: str | None, as_json: bool) -> None:
    """A table of the projects: format, status, review (for projects added with --review),
    one mark per stage in graph order (✓ made, ✗ failed in the last run, ▸ running now, – not
    made yet), the video's length and when the project last changed. With a key, that
    project, its last error and its candidate clips (the ids `shorts select` takes).

    \b
    --json: a list, one object per project:
      key, title, format, status, review (pending|approved|rejected,
      null without --review), stages ({stage: when it was made, or null}),
      stage_states ({stage: done|failed|running|pending}),
      duration (the video's seconds, or null), updated, error,
      publish_at, published ([{publisher, state, url}])
    """
    catalog = _catalog()
    projects = [_project(key)] if key else catalog.list_projects()
    instance = _instance()
    rows = [_status_row(catalog, instance, p) for p in projects]
    if as_json:
        _print_json(rows)
        return
    out.print(_status_table(rows))
    if key:
        error = catalog.last_error(key)
        if error:
            out.print(f"[red]last error:[/] {escape(error)}")
        _print_candidates(key)


@main.command()
@click.argument("key")
@click.argument("clip_ids", nargs=-1)
@click.option("--auto", is_flag=True, help="Return to automatic ranking.")
@click.option("--json", "as_json", is_flag=True, help="Print the choice as JSON.")
def select(key: str, clip_ids: tuple[str, ...], auto: bool, as_json: bool) -> None:
    """Fix the clips and their ranking: the first id is #1. `--auto` undoes it.

    \b
    --json: key, clip_ids (the fixed order, #1 first; null: automatic)
    """
    spec = _project(key)
    if auto:
        _catalog().set_selection(spec.key, None)
        if as_json:
            _print_json({"key": spec.key, "clip_ids": None})
        else:
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
    if as_json:
        _print_json({"key": spec.key, "clip_ids": list(clip_ids)})
    else:
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
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the script as JSON (with --edit/--reset: the result, as JSON).",
)
def script(key: str, edit_file: Any, reset: bool, no_run: bool, as_json: bool) -> None:
    """Show the project's script, or replace it (`--edit FILE`): the narration, slides, video
    and upload of that project are then made again from the new script.

    \b
    --json: the script itself (VideoScript: title, language, chapters
      with their scenes, ...), the file --edit takes. With --edit or
      --reset: key, script (edited|reset), scenes (count, or null),
      run (the run's object as `shorts run --json` prints it, or null
      with --no-run)
    """
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
            change: dict[str, Any] = {
                "key": spec.key,
                "script": "edited",
                "scenes": len(edited.scenes()),
            }
            console.print(f"{key}: script replaced ({len(edited.scenes())} scenes)")
        else:
            catalog.set_script_override(spec.key, None, handled=not no_run)
            change = {"key": spec.key, "script": "reset", "scenes": None}
            console.print(f"{key}: the edit is forgotten; the writer writes the script again")
        result = None if no_run else _run_project(key, selection=STAGES[STAGES.index("script") :])
        if as_json:
            _print_json({**change, "run": result})
        elif result is not None and result["success"]:
            click.echo(result["video_path"])
        sys.exit(_exit_code([result] if result else []))
    current = catalog.script_override(spec.key) or _load_asset("script", key)
    if current is None:
        raise CommandError(f"{key} has no script yet: `shorts run {key}` writes one")
    if as_json:
        click.echo(current.model_dump_json(indent=2))
    else:
        click.echo(current.to_markdown())


REVIEW_JSON_HELP = """\b
--json: key, state (approved|rejected), by, at (ISO time), reason"""


@main.command(
    help=f"""Approve a rendered video for publishing (projects added with --review).

{REVIEW_JSON_HELP}"""
)
@click.argument("key")
@click.option("--by", help="Who approves (default: $USER).")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
def approve(key: str, by: str | None, as_json: bool) -> None:
    _review(key, "approved", by, None, as_json)


@main.command(
    help=f"""Reject a rendered video: it is not published; `shorts run KEY` renders it again
for another review.

{REVIEW_JSON_HELP}"""
)
@click.argument("key")
@click.option("--reason", required=True, help="Why: kept with the decision.")
@click.option("--by", help="Who rejects (default: $USER).")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
def reject(key: str, reason: str, by: str | None, as_json: bool) -> None:
    _review(key, "rejected", by, reason, as_json)


@main.command("publish-due")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def publish_due(as_json: bool) -> None:
    """Publish every video that is due now, once — what the publish schedule does each
    minute; prints their URLs.

    \b
    --json: a list (empty when nothing is due), one object per project:
      key, success, and url, platform, video_id when published,
      error when not
    """
    from shorts_pipeline.assets.publication import due_projects

    due = due_projects(_catalog(), datetime.now(UTC))
    results = []
    for project, _attempts in due:
        results.append(_publish_project(project.key))
    if as_json:
        _print_json(results)
    else:
        if not results:
            console.print("nothing is due")
        for r in results:
            if r["success"]:
                click.echo(r["url"])
    if any(not r["success"] for r in results):
        sys.exit(EXIT_FAILED)


_PROBLEM = {True: ("FAIL", "red"), False: ("warn", "yellow")}  # by `required`


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(as_json: bool) -> None:
    """Check ffmpeg, fonts, speech, credentials, storage, the catalog and the Dagster
    instance; for each problem, say how to fix it. Exit 1 when a required check fails
    (warnings are for optional parts: emoji, LLM and fal.ai keys, the network). Also removes
    the temp files that interrupted runs left behind.

    \b
    --json: a list, one object per check:
      name, ok (true|false), required (true|false), detail,
      fix (what to do, when not ok)
    """
    from shorts_pipeline.doctor import run_checks

    try:
        swept = _sweep_leftovers()
    except OSError:  # SHORTS_HOME unusable: the checks say so, with the fix
        swept = 0
    if swept and not as_json:
        console.print(f"removed {swept} temp files left by interrupted runs")
    checks = run_checks()
    failed = [c for c in checks if c.required and not c.ok]
    if as_json:
        _print_json([c.to_json() for c in checks])
    else:
        for c in checks:
            word, style = (
                ("ok", "green") if c.ok else ("FAIL", "red") if c.required else ("warn", "yellow")
            )
            out.print(
                f"[{style}]{word:>6}[/]  {escape(c.name)}: {escape(c.detail)}", soft_wrap=True
            )
            if not c.ok and c.fix:
                out.print(f"        fix: {escape(c.fix)}", soft_wrap=True)
        warned = sum(1 for c in checks if not c.ok and not c.required)
        if failed:
            names = ", ".join(c.name for c in failed)
            out.print(
                f"[red]not ready:[/] {escape(names)} failed; {warned} warnings", soft_wrap=True
            )
        else:
            out.print(f"[green]ready[/]; {warned} warnings (optional parts)")
    if failed:
        sys.exit(EXIT_FAILED)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8700, show_default=True, help="0: any free."
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the web browser.")
def serve(host: str, port: int, open_browser: bool) -> None:
    """The preview page: every project with its thumbnail, status, player, script and checks,
    and Approve/Reject buttons. Prints its URL; Ctrl-C stops it. Only this machine can reach
    it unless --host says otherwise (there is no login). Exit 2 when the port is taken."""
    from shorts_pipeline.serve import run_server

    run_server(host, port, open_browser)


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
    key: str, selection: list[str] | None = None, resume: bool = False, header: bool = True
) -> dict[str, Any]:
    """Run the production job (or the `selection` of its assets; with `resume`, the stages
    the last run did not finish) for one partition in this process, showing its progress
    (under a line naming the project, with `header`). Refused when another run of the
    project is going on. Returns the run's object of RUN_JSON_HELP."""
    from shorts_pipeline.locks import ProjectBusyError, project_lock

    run_id = str(uuid.uuid4())
    try:
        with project_lock(key, run_id):
            return _run_locked(key, run_id, selection, resume, header)
    except ProjectBusyError as err:
        console.print(f"[red]busy[/] {escape(str(err))}", soft_wrap=True)
        return {"key": key, "success": False, "outcome": "busy", "error": str(err)}


def _run_locked(
    key: str, run_id: str, selection: list[str] | None, resume: bool, header: bool
) -> dict[str, Any]:
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
    with _bar("total", title=key if header else None) as (progress, task), _sigterm_as_interrupt():
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
            result = None
        finally:
            done_event.set()
            follower.join(timeout=5)
    elapsed = time.monotonic() - started
    payload: dict[str, Any] = {
        "key": key,
        "run_id": run_id,
        "success": bool(result and result.success),
        "outcome": "done" if result and result.success else "failed",
        "seconds": round(elapsed, 1),
    }
    stopped = None if result is None else _interrupted_stage(result)
    if result is None or (not result.success and (cancelled.is_set() or stopped)):
        # Ctrl-C or SIGTERM (Dagster interrupts the step, or it came between steps), or a
        # Terminate from the UI (passed on as SIGINT, or Dagster stopped the step and ended
        # the run CANCELED).
        why = "cancelled from the Dagster UI" if cancelled.is_set() else "interrupted"
        where = f" during {stopped}" if stopped else ""
        message = f"{why}{where}; nothing half-written was kept"
        payload.update(outcome="cancelled" if cancelled.is_set() else "interrupted", error=message)
        catalog.set_status(key, ProjectStatus.failed, message)
        console.print(
            f"[red]{why}[/] {key}{where}; nothing half-written was kept; "
            f"`shorts run {key} --resume` continues from there"
        )
        return payload
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


def _interrupted_stage(result: Any) -> str | None:
    """The stage a Ctrl-C or SIGTERM stopped (Dagster fails it as interrupted), if any."""
    for event in result.all_events:
        if event.is_step_failure:
            err = event.step_failure_data.error
            if err is not None and err.cls_name == "DagsterExecutionInterruptedError":
                return str(event.step_key)
    return None


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
    payload: dict[str, Any] = {
        "key": key,
        "run_id": last.run_id,
        "success": True,
        "outcome": "done",
        "seconds": 0.0,
    }
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
    task: TaskID,
    selection: list[str] | None = None,
    cancelled: threading.Event | None = None,
) -> None:
    """Drive the bar from the run's event log until `done`: a row per stage, and ffmpeg's
    progress inside the render (RunProgress). When the run is terminated from the Dagster UI
    (it is then CANCELING), interrupt the main thread as Ctrl-C would: the UI can only mark
    an in-process run, not reach it."""
    from dagster import DagsterRunStatus

    view = RunProgress(progress, task, selection or STAGES)
    # Without a bar to draw (not a terminal) only the run's status is watched, and less
    # often: the CPU goes to the render.
    drawn = not progress.disable
    cursor = None
    while True:
        alive = not done.is_set()
        try:
            conn = instance.get_records_for_run(run_id, cursor=cursor) if drawn else None
        except Exception:  # the run may not be stored yet
            conn = None
        if conn is not None:
            cursor = conn.cursor
            for record in conn.records:
                view.apply(record.event_log_entry)
        if not alive:
            break
        if cancelled is not None and not cancelled.is_set():
            run = instance.get_run_by_id(run_id)
            if run is not None and run.status == DagsterRunStatus.CANCELING:
                cancelled.set()
                os.kill(os.getpid(), signal.SIGINT)
        done.wait(0.3 if drawn else 1.0)
    view.finish()


# What the assets log that says how far a stage is (see assets/video.py and segments.py).
_RENDER_LENGTH = re.compile(r"^rendering (\d+(?:\.\d+)?) s\b")
_RENDER_PROGRESS = re.compile(r"^render progress (\d+(?:\.\d+)?)%")
_SEGMENT_DONE = re.compile(r"^segment (\d+)/(\d+): (?:stored|reused)")
_REUSING = re.compile(r": reusing (?:it|them)\b")
# Dagster's own line for a step whose upstream failed.
_NOT_RUN = re.compile(r"^Dependencies for step \S+ failed: \[(.*)\]")

_MARKS = {
    "waiting": "[dim]·[/]",
    "running": "[yellow]▸[/]",
    "done": "[green]✓[/]",
    "failed": "[red]✗[/]",
    "skipped": "[dim]–[/]",
}


class RunProgress:
    """The rows of one run under its `total` row: one per stage (· waiting, ▸ running,
    ✓ done, ✗ failed, – skipped) with how long it took, and inside the video row the
    render's own progress as ffmpeg reports it — the share of the video written and its
    seconds — inside the segments row the segments made.

    Fed with the run's event-log entries: the steps' start, success, failure or skip, and
    the lines the assets log ("rendering 28.0 s: …", "render progress 40%", "segment 2/6:
    stored"). The render itself knows nothing of Dagster or of this bar: it calls a progress
    function, which the video asset writes to the run's log, which the UI shows and this
    reads."""

    def __init__(self, progress: Progress, total: TaskID, stages: list[str]) -> None:
        self.progress = progress
        self.total = total
        self.stages = [s for s in STAGES if s in stages]
        scale = 100 / sum(STAGE_WEIGHTS[s] for s in self.stages)
        self.weights = {s: STAGE_WEIGHTS[s] * scale for s in self.stages}
        self.state = dict.fromkeys(self.stages, "waiting")
        self.fraction = dict.fromkeys(self.stages, 0.0)
        self.render_seconds: float | None = None
        self.rows = {
            s: progress.add_task(
                f"  {STAGE_LABELS[s]}",
                total=1.0,
                mark=_MARKS["waiting"],
                detail="",
                started=None,
                ended=None,
            )
            for s in self.stages
        }

    def apply(self, entry: Any) -> None:
        """Take one event-log entry of the run into account."""
        from dagster import DagsterEventType

        event = entry.dagster_event
        step = entry.step_key or (event.step_key if event is not None else None)
        if step not in self.rows:
            return
        if event is None:
            self._note(step, entry.user_message or "")
        elif event.event_type == DagsterEventType.STEP_START:
            self._set(step, "running", started=entry.timestamp)
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            self.fraction[step] = 1.0
            self._set(step, "done", ended=entry.timestamp)
            if step == "video" and self.render_seconds is not None:
                self._detail(step, self._render_detail())
        elif event.event_type == DagsterEventType.STEP_FAILURE:
            self._set(step, "failed", ended=entry.timestamp)
        elif event.event_type == DagsterEventType.STEP_SKIPPED:
            self._set(step, "skipped")
        self._update_total()

    def finish(self) -> None:
        """The run is over: the total row says how it ended."""
        ok = all(self.state[s] == "done" for s in self.stages)
        failed = any(self.state[s] == "failed" for s in self.stages)
        mark = _MARKS["done"] if ok else _MARKS["failed"] if failed else _MARKS["skipped"]
        self.progress.update(self.total, mark=mark, ended=time.time())
        self._update_total()

    def _note(self, step: str, message: str) -> None:
        if step == "video" and (found := _RENDER_LENGTH.match(message)):
            self.render_seconds = float(found.group(1))
            self._detail(step, self._render_detail())
        elif step == "video" and (found := _RENDER_PROGRESS.match(message)):
            self.fraction[step] = min(float(found.group(1)) / 100, 1.0)
            self._detail(step, self._render_detail())
        elif step == "segments" and (found := _SEGMENT_DONE.match(message)):
            made, count = int(found.group(1)), int(found.group(2))
            self.fraction[step] = made / count
            self._detail(step, f"segment {made} of {count}")
        elif _REUSING.search(message):
            self._detail(step, "unchanged: reused")
        elif found := _NOT_RUN.match(message):
            before = found.group(1).replace("'", "").split(", ")
            failed = ", ".join(STAGE_LABELS.get(s, s) for s in before)
            self._set(step, "skipped", detail=f"not run: {failed} failed")
            self._update_total()
            return
        else:
            return
        self.progress.update(self.rows[step], completed=self.fraction[step])

    def _render_detail(self) -> str:
        fraction, seconds = self.fraction["video"], self.render_seconds
        if seconds is None:
            return f"ffmpeg {fraction:.0%}"
        if self.state["video"] == "done":
            return f"{seconds:.1f} s video"
        if fraction >= 1.0:  # the quality scan of the finished file, then the store
            return f"{seconds:.1f} s rendered; checking it"
        return f"ffmpeg: {fraction * seconds:.1f} of {seconds:.1f} s"

    def _set(self, step: str, state: str, **fields: Any) -> None:
        self.state[step] = state
        completed = 1.0 if state == "done" else self.fraction[step]
        self.progress.update(self.rows[step], mark=_MARKS[state], completed=completed, **fields)

    def _detail(self, step: str, text: str) -> None:
        self.progress.update(self.rows[step], detail=text)

    def _update_total(self) -> None:
        done = sum(self.weights[s] * self.fraction[s] for s in self.stages)
        running = [STAGE_LABELS[s] for s in self.stages if self.state[s] == "running"]
        finished = sum(1 for s in self.stages if self.state[s] == "done")
        detail = f"{finished}/{len(self.stages)} stages" + (f" · {running[0]}" if running else "")
        self.progress.update(self.total, completed=done, detail=detail)


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
    key: str,
    state: Literal["approved", "rejected"],
    by: str | None,
    reason: str | None,
    as_json: bool = False,
) -> None:
    from shorts_pipeline.review import ReviewError, record_review

    catalog = _catalog()
    try:
        who = record_review(catalog, key, state, by=by, reason=reason)
    except ReviewError as err:
        raise CommandError(str(err)) from err
    if as_json:
        review = catalog.review(key)
        _print_json(
            {
                "key": key,
                "state": review.state,
                "by": review.by,
                "at": review.at.isoformat(timespec="seconds") if review.at else None,
                "reason": review.reason,
            }
        )
        return
    out.print(f"{key}: {state} by {escape(who)}" + (f" — {escape(reason)}" if reason else ""))


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


# Below this width the table leaves out the titles (the keys are made from them) and the
# year, so that the keys still fit.
_NARROW_STATUS = 110


def _status_table(rows: list[dict[str, Any]]) -> Table:
    """The projects, one row each; the stages are one column of marks, in graph order."""
    narrow = out.width < _NARROW_STATUS
    with_review = any(row["review"] for row in rows)
    table = Table(
        title=f"projects in {escape(str(shorts_home()))}",
        caption="stages: " + " ".join(STAGE_LABELS[s] for s in STAGES),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    # The key is what every other command takes: whole, on one line, at any width; the
    # other columns give up room first.
    table.add_column("key", no_wrap=True, min_width=max((len(r["key"]) for r in rows), default=3))
    if not narrow:
        table.add_column("title", max_width=28, min_width=10)
    table.add_column("format", no_wrap=True)
    table.add_column("status", no_wrap=True)
    if with_review:
        table.add_column("review", no_wrap=True)
    table.add_column("stages", no_wrap=True)
    table.add_column("length", justify="right", no_wrap=True)
    table.add_column("updated", no_wrap=True)
    for row in rows:
        review = _styled(row["review"], _REVIEW_STYLES) if row["review"] else "[dim]–[/]"
        table.add_row(
            row["key"],
            *([] if narrow else [escape(row["title"])]),
            row["format"],
            _styled(row["status"], _STATUS_STYLES),
            *([review] if with_review else []),
            "".join(_STAGE_MARKS[row["stage_states"][s]] for s in STAGES),
            f"{row['duration']:.1f} s" if row["duration"] is not None else "[dim]–[/]",
            _local_time(row["updated"], "%m-%d %H:%M" if narrow else "%Y-%m-%d %H:%M"),
        )
    return table


_STAGE_MARKS = {
    "done": "[green]✓[/]",
    "failed": "[red]✗[/]",
    "running": "[yellow]▸[/]",
    "pending": "[dim]–[/]",
}
_STATUS_STYLES = {
    "failed": "red",
    "running": "yellow",
    "rendered": "cyan",
    "uploaded": "green",
    "published": "bold green",
}
_REVIEW_STYLES = {"pending": "yellow", "approved": "green", "rejected": "red"}


def _status_row(catalog: Any, instance: Any, spec: ProjectSpec) -> dict[str, Any]:
    """One project as `shorts status` shows it (the keys of its --json)."""
    records = _stage_records(instance, spec.key)
    states = {s: "done" if r is not None else "pending" for s, r in records.items()}
    from_last_run, run_changed = _last_run_states(instance, spec.key)
    states.update(from_last_run)
    review = catalog.review(spec.key) if spec.review else None
    times = [spec.created_at, run_changed, review.at if review else None]
    times += [datetime.fromtimestamp(r.timestamp, UTC) for r in records.values() if r]
    video = records["video"]
    duration = _metadata_value(video, "duration_s") if video is not None else None
    return {
        "key": spec.key,
        "title": spec.title,
        "format": spec.format.value,
        "status": spec.status.value,
        "review": (review.state or "pending") if review else None,
        "stages": {s: _utc(r.timestamp) if r else None for s, r in records.items()},
        "stage_states": states,
        "duration": float(duration) if isinstance(duration, int | float) else None,
        "updated": max(t for t in times if t is not None).isoformat(timespec="seconds"),
        "error": catalog.last_error(spec.key),
        "publish_at": spec.publish_at.isoformat() if spec.publish_at else None,
        "published": [
            {"publisher": r.publisher, "state": r.state, "url": r.url}
            for r in catalog.publications(spec.key)
        ],
    }


def _stage_records(instance: Any, key: str) -> dict[str, Any]:
    """Each stage's latest materialisation of the project's partition (None: never made)."""
    import dagster as dg

    latest: dict[str, Any] = {}
    for stage in STAGES:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(stage), asset_partitions=[key]), limit=1
        ).records
        latest[stage] = records[0] if records else None
    return latest


def _last_run_states(instance: Any, key: str) -> tuple[dict[str, str], datetime | None]:
    """What the project's last production run says that the materialisations cannot: the
    stages it failed, and those it is running now; and when that run last changed."""
    import dagster as dg

    found = instance.get_run_records(
        filters=dg.RunsFilter(job_name="produce_project", tags={"dagster/partition": key}),
        limit=1,
    )
    if not found:
        return {}, None
    record = found[0]
    stamp = record.end_time or record.start_time
    changed = datetime.fromtimestamp(stamp, UTC) if stamp else None
    run = record.dagster_run
    if run.status == dg.DagsterRunStatus.SUCCESS:
        return {}, changed
    kinds = {
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
    }
    started: set[str] = set()
    ended: set[str] = set()
    failed: set[str] = set()
    for event_record in instance.get_records_for_run(run.run_id, of_type=kinds).records:
        event = event_record.event_log_entry.dagster_event
        step = event.step_key or ""
        if event.event_type == dg.DagsterEventType.STEP_START:
            started.add(step)
        else:
            ended.add(step)
            if event.event_type == dg.DagsterEventType.STEP_FAILURE:
                failed.add(step)
    states = dict.fromkeys(sorted(failed & set(STAGES)), "failed")
    if not run.is_finished:
        states.update(dict.fromkeys(sorted((started - ended) & set(STAGES)), "running"))
    return states, changed


def _metadata_value(record: Any, name: str) -> Any:
    materialization = record.asset_materialization
    value = materialization.metadata.get(name) if materialization is not None else None
    return getattr(value, "value", value)


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _local_time(iso: str, form: str) -> str:
    return datetime.fromisoformat(iso).astimezone().strftime(form)


def _styled(value: str, styles: dict[str, str]) -> str:
    style = styles.get(value)
    return f"[{style}]{escape(value)}[/]" if style else escape(value)


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


class _StageTime(ProgressColumn):
    """How long a row took, or has taken so far (from its `started`/`ended` fields)."""

    def render(self, task: Task) -> Text:
        started = task.fields.get("started")
        if started is None:
            return Text("")
        ended = task.fields.get("ended") or time.time()
        return Text(f"{max(ended - started, 0):5.1f} s", style="progress.elapsed")


def _progress_wanted() -> bool:
    """Bars only on an interactive terminal: not in a pipe, a file or a CI log (even one
    that sets FORCE_COLOR), nor with TERM=dumb. TTY_INTERACTIVE=1 or 0 decides it instead."""
    if os.environ.get("TTY_INTERACTIVE") in ("0", "1"):
        return console.is_interactive
    isatty = getattr(console.file, "isatty", None)
    try:
        return console.is_interactive and bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


@contextlib.contextmanager
def _bar(label: str, title: str | None = None) -> Iterator[tuple[Progress, TaskID]]:
    """Progress rows on stderr (when _progress_wanted), starting with one row `label` of
    total 100 that the caller drives; `title` is a line above them."""
    shown = _progress_wanted()
    with contextlib.ExitStack() as stack:
        progress = Progress(
            TextColumn("{task.fields[mark]}"),
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            TextColumn("{task.percentage:>3.0f}%"),
            _StageTime(),
            TextColumn("{task.fields[detail]}"),
            console=_terminal_console(stack) if shown else console,
            disable=not shown,
            # Whatever else is printed meanwhile stays on its own stream (stdout is for
            # results and JSON only).
            redirect_stdout=False,
            redirect_stderr=False,
        )
        if shown and title:
            progress.console.print(f"[bold]{escape(title)}[/]", soft_wrap=True)
        with progress:
            task = progress.add_task(
                f"[bold]{escape(label)}[/]",
                total=100,
                mark=_MARKS["running"],
                detail="",
                started=time.time(),
                ended=None,
            )
            yield progress, task


def _terminal_console(stack: contextlib.ExitStack) -> Console:
    """A console on a copy of stderr's file descriptor, taken before the run. While a step
    runs, Dagster points descriptor 2 at the step's compute log (a pipe: not a terminal), and
    a console on it would stop drawing the bar until the step ends."""
    try:
        fd = os.dup(console.file.fileno())
    except (AttributeError, OSError, ValueError):  # no descriptor (a test's stream)
        return console
    encoding = getattr(console.file, "encoding", None) or "utf-8"
    terminal = stack.enter_context(open(fd, "w", encoding=encoding, errors="replace"))  # noqa: SIM115
    return Console(file=terminal, width=console.width, force_terminal=True, force_interactive=True)


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
