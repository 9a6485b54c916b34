"""What the `shorts` command prints and how it exits: the documented exit codes, JSON alone on
stdout, the per-stage progress (with ffmpeg's progress inside the render) on a terminal and
none in a pipe, the status table, doctor's fixes, and `shorts serve`. No renders here: the
runs are tiny jobs, failing searches or held locks."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from io import StringIO
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from rich.console import Console
from rich.progress import Progress

from shorts_pipeline.cli import (
    EXIT_CODES,
    RunProgress,
    _follow_run,
    main,
)
from shorts_pipeline.locks import project_lock
from shorts_pipeline.resources.catalog import CatalogResource

SHORTS = [sys.executable, "-m", "shorts_pipeline.cli"]
REPO = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[")


def invoke(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of an in-process `shorts` call."""
    try:
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:
        runner = CliRunner()
    result = runner.invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "SHORTS_"))}
    env["SHORTS_HOME"] = str(home)
    return env


def test_help_lists_the_exit_codes_and_every_json_output():
    code, out, _ = invoke("--help")
    assert code == 0
    for number in (0, 1, 2, 3, 130):
        assert re.search(rf"^\s+{number}\s+\w", out, re.M), number
    assert set(EXIT_CODES) == {0, 1, 2, 3, 130}
    assert "serve" in out
    # Every command that prints results takes --json and says what it prints.
    for command in [
        "demo",
        "add",
        "run",
        "status",
        "select",
        "script",
        "approve",
        "reject",
        "publish-due",
        "doctor",
    ]:
        code, out, _ = invoke(command, "--help")
        assert code == 0 and "--json" in out, command
        assert re.search(r"--json: +\S", out), command  # the keys are listed
    code, out, _ = invoke("serve", "--help")
    assert code == 0
    assert "--host" in out and "127.0.0.1" in out and "8700" in out and "--open" in out


def test_a_failed_stage_exits_1_with_json_alone_on_stdout_and_no_bar_in_a_pipe(clip_library):
    """The search finds nothing: the run fails in its first stage, and says so in JSON on
    stdout, one line on stderr without control codes (stderr is not a terminal), and in
    status. (tests/test_cli.py runs `shorts demo --json` in a real process with pipes.)"""
    code, key, _ = invoke("add", "Zebras", "--keywords", "zebra", "--library", str(clip_library))
    key = key.strip()
    code, out, err = invoke("run", key, "--json")
    assert code == 1, err
    result = json.loads(out)  # nothing else on stdout
    assert result["key"] == key and result["success"] is False
    assert result["outcome"] == "failed"
    assert result["error"].startswith("search_results: no clip in")
    assert not ANSI.search(err) and "\r" not in err
    assert "━" not in err  # no bar at all
    assert f"failed {key}: search_results: no clip" in err

    code, out, _ = invoke("status", key, "--json")
    [row] = json.loads(out)
    assert row["status"] == "failed" and row["error"] == result["error"]
    assert row["stage_states"]["search_results"] == "failed"
    assert set(row["stage_states"].values()) == {"failed", "pending"}
    assert row["duration"] is None and row["review"] is None
    code, out, _ = invoke("status")
    assert code == 0
    line = next(ln for ln in out.splitlines() if ln.startswith(key[:8]))
    assert "failed" in line and "✗–––––––" in line


def test_a_busy_project_exits_3_and_says_who_holds_it(shorts_home):
    spec = CatalogResource().add_project("Held", keywords=["football"])
    with project_lock(spec.key, "another-run"):
        code, out, err = invoke("run", spec.key, "--json")
    assert code == 3
    result = json.loads(out)
    assert result["outcome"] == "busy" and result["success"] is False
    assert result["error"].startswith(f"{spec.key} is already rendering")
    assert "busy" in err


def test_an_unusable_shorts_home_exits_1_and_doctor_says_how_to_fix_it(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    env = {"SHORTS_HOME": str(not_a_folder / "home")}
    result = CliRunner().invoke(main, ["status"], env=env)
    assert result.exit_code == 1
    assert "cannot use SHORTS_HOME" in result.output and "Traceback" not in result.output

    result = CliRunner().invoke(main, ["doctor", "--json"], env=env)
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.output)}
    home = checks["SHORTS_HOME"]
    assert set(home) == {"name", "ok", "required", "detail", "fix"}
    assert not home["ok"] and home["required"]
    assert "set SHORTS_HOME to a writable folder" in home["fix"]
    # Every check that failed says what to do, and the others still ran.
    assert all(c["fix"] for c in checks.values() if not c["ok"])
    assert checks["ffmpeg"]["ok"] and checks["fonts"]["ok"]


# ---- progress -------------------------------------------------------------------------------


@dg.op(name="search_results")
def _search() -> int:
    return 1


@dg.op(name="video", config_schema={"fail": bool})
def _video(context, found: int) -> int:  # type: ignore[no-untyped-def]
    # What assets/video.py logs around the render (render_timeline's progress callback).
    context.log.info("rendering 2.0 s: 3 segments, 0 voice cues, 0 subtitle cues")
    for percent in (10, 50, 100):
        context.log.info(f"render progress {percent}%")
    if context.op_config["fail"]:
        raise dg.Failure(description="check no_black_segments failed")
    return found


@dg.op(name="upload")
def _upload(found: int) -> int:
    return found


@dg.job
def _small_run() -> None:
    _upload(_video(_search()))


def _rows(progress: Progress) -> dict[str, dict]:
    return {
        task.description.strip(): {
            "completed": task.completed,
            "mark": task.fields["mark"],
            "detail": task.fields["detail"],
        }
        for task in progress.tasks
    }


def _run_small(fail: bool) -> tuple[dg.DagsterInstance, str]:
    instance = dg.DagsterInstance.ephemeral()
    result = _small_run.execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={"ops": {"video": {"config": {"fail": fail}}}},
    )
    return instance, result.run_id


def test_the_bar_has_a_row_per_stage_and_the_render_progress_inside_the_video_row():
    instance, run_id = _run_small(fail=False)
    progress = Progress(console=Console(file=StringIO()))
    total = progress.add_task("total", total=100, mark="", detail="", started=0.0, ended=None)
    view = RunProgress(progress, total, ["search_results", "video", "upload"])
    seen = []
    for record in instance.get_records_for_run(run_id).records:
        view.apply(record.event_log_entry)
        seen.append(_rows(progress)["video"])
    # ffmpeg's progress, as the video asset logs it, moves the video row while it renders:
    # the share written, and how many of the video's seconds that is.
    assert {"completed": 0.5, "mark": "[yellow]▸[/]", "detail": "ffmpeg: 1.0 of 2.0 s"} in seen
    assert any(s["detail"] == "ffmpeg: 0.2 of 2.0 s" for s in seen)
    assert any(s["detail"] == "2.0 s rendered; checking it" for s in seen)
    view.finish()
    rows = _rows(progress)
    assert list(rows) == ["total", "search", "video", "upload"]
    assert all(rows[s]["mark"] == "[green]✓[/]" for s in ("search", "video", "upload"))
    assert rows["video"]["detail"] == "2.0 s video"
    assert rows["total"]["completed"] == pytest.approx(100)
    assert rows["total"]["mark"] == "[green]✓[/]"


def test_a_failed_stage_is_marked_and_the_stages_after_it_say_why_they_did_not_run():
    instance, run_id = _run_small(fail=True)
    progress = Progress(console=Console(file=StringIO()))
    total = progress.add_task("total", total=100, mark="", detail="", started=0.0, ended=None)
    done = threading.Event()
    done.set()  # the run is over: one pass over its log
    _follow_run(instance, run_id, done, progress, total, ["search_results", "video", "upload"])
    rows = _rows(progress)
    assert rows["search"]["mark"] == "[green]✓[/]"
    assert rows["video"]["mark"] == "[red]✗[/]"
    assert rows["upload"]["mark"] == "[dim]–[/]"
    assert rows["upload"]["detail"] == "not run: video failed"
    assert rows["total"]["mark"] == "[red]✗[/]"


CHILD = textwrap.dedent(
    """
    import time
    import dagster as dg
    from shorts_pipeline.cli import _bar

    @dg.op
    def video():
        for i in range(12):
            progress.update(task, detail=f"inside-step-{i}")
            time.sleep(0.15)

    @dg.job
    def job():
        video()

    with _bar("total") as (progress, task):
        job.execute_in_process(instance=dg.DagsterInstance.get())
    """
)


def test_on_a_terminal_the_bar_is_drawn_while_a_step_runs(tmp_path):
    """Dagster points descriptor 2 at the step's compute log while a step runs: the bar
    keeps drawing on the terminal anyway (it writes to its own copy of the descriptor)."""
    (tmp_path / "dagster").mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FORCE_COLOR", "TTY_INTERACTIVE", "TTY_COMPATIBLE", "NO_COLOR")
    }
    env.update(TERM="xterm-256color", COLUMNS="100", DAGSTER_HOME=str(tmp_path / "dagster"))
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=REPO,
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    assert proc.wait(timeout=30) == 0, output[-2000:]
    frames = set(re.findall(rb"inside-step-\d+", output))
    assert len(frames) >= 3, output[-2000:]  # redrawn while the step ran, not only at its end
    assert b"\x1b[" in output  # a live display on a terminal


# ---- serve ----------------------------------------------------------------------------------


def test_serve_prints_its_url_serves_the_page_and_stops_on_ctrl_c(shorts_home):
    proc = subprocess.Popen(
        [*SHORTS, "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(shorts_home),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/?", line)
        assert url, line
        with urllib.request.urlopen(url.group(0), timeout=30) as response:
            assert response.status == 200
            assert b"<html" in response.read().lower()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = invoke("serve", "--port", str(port))
    assert code == 2 and "cannot listen on" in err
