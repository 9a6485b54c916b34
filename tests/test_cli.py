"""The `shorts` command as a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from shorts_pipeline.cli import main
from shorts_pipeline.render.inspect import inspect_video

SHORTS = [sys.executable, "-m", "shorts_pipeline.cli"]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_add_prints_a_safe_key_and_registers_the_partition(shorts_home):
    code, out = invoke(
        "add", "축구 묘기 🔥 ../../etc", "--keywords", "football,skills", "--count", "3"
    )
    assert code == 0
    key = out.strip()
    assert re.fullmatch(r"etc-[0-9a-f]{8}", key)  # the ASCII left of the title, and a hash
    code, out = invoke("status", "--json")
    [row] = json.loads(out)
    assert row["key"] == key and row["title"] == "축구 묘기 🔥 ../../etc"
    assert row["stages"] == dict.fromkeys(
        [
            "search_results",
            "selections",
            "script",
            "narration",
            "slides",
            "segments",
            "video",
            "upload",
        ]
    )
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(shorts_home / "dagster")
    assert key in dg.DagsterInstance.get().get_dynamic_partitions("project")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "x", "--publish-at", "next tuesday"], "not an ISO 8601 time"),
        (["add", "x", "--segments", "3"], "are for --format extend"),
        (["add", "x", "--format", "extend", "--segments", "12"], "12 is not in the range"),
        (["add", "x", "--library", "/no/such/dir"], "does not exist"),
        (["run", "no-such-project-12345678"], "no project"),
        (["run", "../../etc"], "is not a project key"),
        (["select", "no-such-project-12345678", "a"], "no project"),
        (["add", "x", "--source-text", "-"], "--source-text is for explainers"),
        (["script", "no-such-project-12345678"], "no project"),
    ],
)
def test_wrong_commands_exit_2_with_a_reason(args, message):
    code, out = invoke(*args)
    assert code == 2
    assert message in out


def test_add_explainer_with_source_text_guesses_korean(tmp_path):
    source = tmp_path / "notes.md"
    source.write_text("# 기초\n\n드리블은 작은 터치에서 시작합니다.\n", encoding="utf-8")
    code, out = invoke("add", "드리블 기초", "--format", "explainer", "--source-text", str(source))
    assert code == 0, out
    from shorts_pipeline.resources.catalog import CatalogResource

    spec = CatalogResource().get_project(out.strip())
    assert spec.format.value == "explainer" and spec.settings.language == "ko"
    assert spec.source_text and "드리블" in spec.source_text

    empty = tmp_path / "empty.md"
    empty.write_text("🚀 ...", encoding="utf-8")
    code, out = invoke("add", "Empty", "--format", "explainer", "--source-text", str(empty))
    assert code == 2 and "source text has no words" in out
    code, out = invoke("script", spec.key)
    assert code == 2 and "has no script yet" in out


@pytest.mark.slow
def test_script_edit_re_renders_the_project_from_the_new_words(shorts_home, tmp_path):
    from shorts_pipeline.models import VideoScript

    code, out = invoke(
        "add", "Edit me", "--format", "explainer", "--target-seconds", "8", "--music", "none"
    )
    key = out.strip()
    assert invoke("run", key)[0] == 0
    code, shown = invoke("script", key, "--json")
    assert code == 0
    script = VideoScript.model_validate_json(shown)
    assert script.writer == "offline"

    edited = VideoScript(
        title=script.title,
        language=script.language,
        chapters=[{"title": "New", "scenes": [{"narration": "Brand new words here."}]}],
    )
    path = tmp_path / "script.json"
    path.write_text(edited.model_dump_json(), encoding="utf-8")
    code, out = invoke("script", key, "--edit", str(path), "--json")
    assert code == 0, out
    edit = json.loads(out[out.index("{\n") :])
    assert (edit["script"], edit["scenes"], edit["run"]["outcome"]) == ("edited", 1, "done")
    srt = (Path(edit["run"]["video_path"]).parent / "subtitles.srt").read_text()
    assert "Brand new words here." in srt
    code, md = invoke("script", key)
    assert "Brand new words here." in md and "edited" in md

    bad = tmp_path / "bad.json"
    bad.write_text('{"title": "x", "chapters": []}', encoding="utf-8")
    code, out = invoke("script", key, "--edit", str(bad), "--no-run")
    assert code == 2 and "not a valid script" in out and "chapters" in out


def test_add_chooses_the_publisher_and_keeps_the_publish_time_zone():
    code, out = invoke(
        "add", "For YouTube", "--publisher", "youtube", "--publish-at", "2026-12-01T18:00:00+09:00"
    )
    assert code == 0, out
    from shorts_pipeline.resources.catalog import CatalogResource

    spec = CatalogResource().get_project(out.strip())
    assert spec.settings.publisher == "youtube"
    assert (
        spec.publish_at is not None and spec.publish_at.isoformat() == "2026-12-01T09:00:00+00:00"
    )


def test_adding_the_same_title_twice_names_the_existing_key():
    _, out = invoke("add", "Twice")
    code, again = invoke("add", "Twice")
    assert code == 2 and out.strip() in again


def test_select_checks_ids_against_search_results(clip_library):
    _, out = invoke("add", "Pick", "--keywords", "football", "--library", str(clip_library))
    key = out.strip()
    # Before a search there is nothing to check against: the ids are kept as given.
    code, out = invoke("select", key, "square", "rotated", "--json")
    assert code == 0 and json.loads(out) == {"key": key, "clip_ids": ["square", "rotated"]}
    code, out = invoke("select", key, "square", "square")
    assert code == 2 and "twice" in out
    code, out = invoke("select", key, "--auto", "--json")
    assert code == 0 and json.loads(out) == {"key": key, "clip_ids": None}


def test_doctor_reports_each_check_and_fails_without_ffmpeg(shorts_home, tmp_path):
    code, out = invoke("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(out)}
    assert code == 0, out
    assert all(set(c) == {"name", "ok", "required", "detail", "fix"} for c in checks.values())
    assert all(c["fix"] for c in checks.values() if not c["ok"])  # each problem says what to do
    assert checks["dagster"]["ok"] and checks["SHORTS_HOME"]["ok"]
    assert checks["ffmpeg"]["ok"] and "ffmpeg version" in checks["ffmpeg"]["detail"]
    assert checks["fonts"]["ok"] and "NotoColorEmoji" in checks["fonts"]["detail"]
    assert checks["media store"]["ok"] and checks["catalog"]["ok"]

    # A PATH without ffmpeg: the check fails and says how to install it.
    env = {**os.environ, "PATH": str(Path(sys.executable).parent), "SHORTS_HOME": str(shorts_home)}
    proc = subprocess.run([*SHORTS, "doctor"], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 1
    assert "ffmpeg: not found on PATH" in proc.stdout and "apt-get install" in proc.stdout
    assert "not ready: ffmpeg, ffprobe failed" in proc.stdout


def test_the_quick_demo_is_the_full_demo_in_short():
    """The suite runs `shorts demo --quick`; `make demo` runs the full one. They differ only in
    length settings (and titles, so that each keeps its own projects)."""
    from shorts_pipeline.cli import DEMO_PROJECTS, QUICK_DEMO_PROJECTS, DemoProject
    from shorts_pipeline.keys import project_key
    from shorts_pipeline.models import ProjectSettings

    def same(p: DemoProject) -> tuple[object, ...]:
        return (p.format, p.keywords, p.language, p.source_text)

    lengths = {"count", "clip_min_seconds", "clip_max_seconds", "script", "extend"}
    for full, quick in zip(DEMO_PROJECTS, QUICK_DEMO_PROJECTS, strict=True):
        assert same(quick) == same(full)
        assert project_key(quick.title, quick.format) != project_key(full.title, full.format)
        assert set(quick.settings or {}) <= lengths
        for p in (full, quick):  # both are valid projects
            ProjectSettings(language=p.language, **(p.settings or {}))
    full_extend, quick_extend = DEMO_PROJECTS[2].settings, QUICK_DEMO_PROJECTS[2].settings
    assert full_extend and quick_extend
    assert full_extend["extend"]["provider"] == quick_extend["extend"]["provider"]


@pytest.mark.long
@pytest.mark.slow
def test_demo_makes_a_real_video_offline(shorts_home):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "SHORTS_"))}
    env["SHORTS_HOME"] = str(shorts_home)
    proc = subprocess.run(
        [*SHORTS, "demo", "--quick", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranking, explainer, extend = json.loads(proc.stdout)  # stdout is the JSON alone
    assert ranking["success"] and explainer["success"] and extend["success"]
    assert {r["outcome"] for r in (ranking, explainer, extend)} == {"done"}
    # stderr is a pipe: one line per project and its result, no bar and no control codes.
    assert "\x1b[" not in proc.stderr and "\r" not in proc.stderr and "━" not in proc.stderr
    assert proc.stderr.count("\ndone ") == 3
    for result in (ranking, explainer, extend):
        video = Path(result["video_path"])
        assert video.is_file() and video.is_relative_to(shorts_home)
        facts = inspect_video(video)
        assert (facts.width, facts.height, facts.fps) == (1080, 1920, 30)
        assert 8 < facts.duration <= 25  # --quick: about 15 s each
        assert facts.loudness.integrated_lufs == pytest.approx(-14, abs=1)
        # Narrated, with subtitles that follow the voice: an SRT next to the video.
        srt = (video.parent / "subtitles.srt").read_text(encoding="utf-8")
        assert srt.count(" --> ") >= 3
    assert re.search(
        "[가-힣]", (Path(explainer["video_path"]).parent / "subtitles.srt").read_text()
    )
    assert (shorts_home / "library" / "catalog.json").is_file()

    # The runs are in the Dagster instance the UI reads, every stage materialised.
    code, out = invoke("status", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["format"] for r in rows] == ["ranking", "explainer", "extend"]
    assert all(r["status"] == "uploaded" and all(r["stages"].values()) for r in rows)


@pytest.mark.slow
def test_ctrl_c_during_the_render_keeps_nothing_half_written(shorts_home, clip_library):
    import signal
    import time

    from shorts_pipeline.models import ProjectSettings
    from shorts_pipeline.resources.catalog import CatalogResource

    settings = ProjectSettings(
        count=4, clip_min_seconds=3, clip_max_seconds=3.5, library=str(clip_library)
    )
    spec = CatalogResource().add_project("Interrupted", keywords=["football"], settings=settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "SHORTS_"))}
    env["SHORTS_HOME"] = str(shorts_home)
    proc = subprocess.Popen(
        [*SHORTS, "run", spec.key],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not list(shorts_home.rglob("*.partial.mp4")):
        assert proc.poll() is None and time.monotonic() < deadline, "the render never started"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130  # interrupted (EXIT_CODES)
    assert "interrupted" in err
    leftovers = [
        p
        for p in shorts_home.rglob("*")
        if "partial" in p.name or p.name.endswith(("mix.wav", "limited.wav"))
    ]
    assert not leftovers
    assert not (shorts_home / "media" / "projects" / spec.key / "video.mp4").exists()
    project = CatalogResource().get_project(spec.key)
    assert project.status.value == "failed"
    assert "interrupted" in (CatalogResource().last_error(spec.key) or "")


def test_long_keys_and_paths_print_on_one_line():
    title = "A very long title about the most incredible football skills of the year, ranked"
    result = CliRunner().invoke(main, ["add", title], env={"COLUMNS": "30"})
    assert result.exit_code == 0
    assert result.output.count("\n") == 1 and len(result.output.strip()) > 30


@pytest.mark.slow
def test_review_then_publish_due_publishes_once(shorts_home, clip_library):
    from datetime import UTC, datetime, timedelta

    from shorts_pipeline.resources.catalog import CatalogResource
    from tests.helpers import fast_settings

    spec = CatalogResource().add_project(
        "Needs a yes",
        keywords=["football"],
        settings=fast_settings(library=str(clip_library)),
        publish_at=datetime.now(UTC) - timedelta(minutes=5),
        review=True,
    )
    code, out = invoke("approve", spec.key)
    assert code == 2 and "no rendered video to review" in out
    assert invoke("run", spec.key)[0] == 0
    code, out = invoke("publish-due")
    assert code == 0 and "nothing is due" in out  # rendered, but not approved

    code, out = invoke("reject", spec.key, "--reason", "music too loud", "--by", "editor")
    assert code == 0
    review = CatalogResource().review(spec.key)
    assert (review.state, review.by, review.reason) == ("rejected", "editor", "music too loud")
    assert "nothing is due" in invoke("publish-due")[1]
    # The status table: the review, a mark for each stage, the video's length.
    result = CliRunner().invoke(main, ["status"], env={"COLUMNS": "160"})
    [row] = [ln for ln in result.output.splitlines() if spec.key in ln]
    assert "Needs a yes" in row and "rejected" in row and "✓✓✓✓✓✓✓✓" in row
    assert re.search(r"\b\d+\.\d s\b", row)
    # On a narrow terminal the key, which the other commands take, still prints whole.
    narrow = CliRunner().invoke(main, ["status"], env={"COLUMNS": "40"}).output
    assert len([ln for ln in narrow.splitlines() if spec.key in ln]) == 1

    code, out = invoke("approve", spec.key, "--by", "editor", "--json")
    assert code == 0
    decision = json.loads(out)
    assert decision["state"] == "approved" and decision["by"] == "editor"
    assert set(decision) == {"key", "state", "by", "at", "reason"}
    code, out = invoke("publish-due", "--json")
    assert code == 0, out
    [published] = json.loads(out[out.index("[") :])
    assert published["success"] and published["platform"] == "local"
    assert "nothing is due" in invoke("publish-due")[1]  # once
    feed = json.loads((shorts_home / "channel" / "feed.json").read_text())
    assert [i["title"] for i in feed["items"]] == ["Needs a yes"]
    code, out = invoke("status", spec.key, "--json")
    [row] = json.loads(out)
    assert row["status"] == "published" and row["review"] == "approved"
    assert set(row["stage_states"].values()) == {"done"}
    assert 4 < row["duration"] < 10 and row["published"][0]["state"] == "published"
