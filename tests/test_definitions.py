"""The code location: loads anywhere, has the graph we promise, and serves it in `dagster dev`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from shorts_pipeline.definitions import defs
from shorts_pipeline.models import ProjectSettings
from shorts_pipeline.resources.catalog import CatalogResource
from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[1]
STAGES = [
    "search_results",
    "selections",
    "script",
    "narration",
    "slides",
    "segments",
    "video",
    "upload",
    "publication",
]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "SHORTS_", "AWS_"))}
    return {**env, **extra}


def test_loads_with_no_environment_variables(tmp_path):
    code = (
        "import dagster as dg; from shorts_pipeline.definitions import defs; "
        "dg.Definitions.validate_loadable(defs); "
        "print(sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(sorted(STAGES))
    # Loading wrote nothing: state appears only when something runs.
    assert not (tmp_path / ".shorts").exists()


def test_graph_shape_and_what_the_ui_shows():
    graph = defs.resolve_asset_graph()
    deps = {
        k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys)
        for k in graph.get_all_asset_keys()
    }
    assert deps == {
        "search_results": [],
        "selections": ["search_results"],
        "script": ["selections"],
        "narration": ["script"],
        "slides": ["narration", "script", "selections"],
        "segments": ["script"],
        "video": ["narration", "script", "segments", "selections", "slides"],
        "upload": ["video"],
        "publication": ["script", "upload", "video"],
    }
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.partitions_def is not None and node.partitions_def.name == "project"
        assert node.description and len(node.description) > 80, key
        assert node.kinds and node.owners
        assert node.group_name == ("publishing" if key.path[-1] == "publication" else "production")
    checks = {c.name for c in graph.get_check_keys_for_assets({dg.AssetKey("video")})}
    assert checks == {
        "resolution",
        "frame_rate_30",
        "duration_within_limit",
        "duration_matches_plan",
        "has_audio",
        "loudness_minus_14_lufs",
        "true_peak_below_minus_1_dbtp",
        "audio_video_durations_match",
        "no_black_segments",
        "no_frozen_segments",
        "no_silent_gaps",
        "text_inside_safe_area",
        "faststart",
        "h264_yuv420p",
        "h264_high_profile",
    }
    early = {
        key.to_user_string(): sorted(c.name for c in graph.get_check_keys_for_assets({key}))
        for key in map(dg.AssetKey, ["selections", "script", "narration"])
    }
    assert early == {
        "selections": ["selected_clips_decodable"],
        "script": ["speech_length_near_target"],
        "narration": ["narration_fits_plan"],
    }
    assert defs.resolve_job_def("produce_project").executor_def.name == "in_process"


def _graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["data"]


@pytest.mark.long
@pytest.mark.slow
def test_dagster_dev_shows_projects_and_runs_sensors_and_the_schedule(
    shorts_home, clip_library, tmp_path
):
    settings = ProjectSettings(
        count=2,
        clip_min_seconds=1.5,
        clip_max_seconds=1.5,
        title_seconds=1.0,
        outro_seconds=1.0,
        library=str(clip_library),
    )
    spec = CatalogResource().add_project("Seen in the UI", keywords=["football"], settings=settings)
    env = clean_env(SHORTS_HOME=str(shorts_home))
    run = subprocess.run(
        [sys.executable, "-m", "shorts_pipeline.cli", "run", spec.key],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]

    port = free_port()
    env["DAGSTER_HOME"] = str(shorts_home / "dagster")
    dagster = str(Path(sys.executable).parent / "dagster")
    log = (tmp_path / "dagster-dev.log").open("w")
    # A child started from a script inherits SIGINT ignored; reset it so SIGTERM (which
    # Dagster maps to its SIGINT handler) stops the server.
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os,signal,sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
            "os.execv(sys.argv[1], sys.argv[1:])",
            dagster,
            "dev",
            "-w",
            str(REPO / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(
                        "dagster dev did not answer: "
                        + (tmp_path / "dagster-dev.log").read_text()[-3000:]
                    )
                time.sleep(1)
        deadline = time.monotonic() + 60
        while True:  # the code location loads after the server answers
            data = _graphql(port, "{ assetNodes { assetKey { path } } }")
            keys = {tuple(n["assetKey"]["path"]) for n in data["assetNodes"]}
            if keys or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert {k[0] for k in keys} == set(STAGES)
        node = _graphql(
            port,
            '{ assetNodeOrError(assetKey: {path: ["video"]}) { ... on AssetNode { '
            "partitionKeys assetMaterializations(limit: 1) { partition metadataEntries { label "
            "... on MarkdownMetadataEntry { mdStr } } } } } }",
        )["assetNodeOrError"]
        assert spec.key in node["partitionKeys"]
        [mat] = node["assetMaterializations"]
        assert mat["partition"] == spec.key
        thumb = next(e for e in mat["metadataEntries"] if e["label"] == "thumbnail")
        assert thumb["mdStr"].startswith("![preview](data:image/jpeg;base64,")

        # With the daemon running, titles added with the CLI render and publish by
        # themselves: the sensor launches each production run, the schedule publishes each
        # video at its time to the local channel, and the feed lists each once.
        now = datetime.now(UTC)
        added = []
        for title, delay in (("Automatic one", 20), ("Automatic two", 80)):
            when = (now + timedelta(seconds=delay)).isoformat()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "shorts_pipeline.cli",
                    "add",
                    title,
                    "--keywords",
                    "football",
                    "--library",
                    str(clip_library),
                    "--count",
                    "2",
                    "--no-narration",
                    "--music",
                    "none",
                    "--publish-at",
                    when,
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert proc.returncode == 0, proc.stderr
            added.append(proc.stdout.strip())
        feed_path = shorts_home / "channel" / "feed.json"
        deadline = time.monotonic() + 300
        titles: list[str] = []
        while time.monotonic() < deadline:
            if feed_path.exists():
                titles = [i["title"] for i in json.loads(feed_path.read_text())["items"]]
                if len(titles) >= 2:
                    break
            time.sleep(3)
        log_tail = (tmp_path / "dagster-dev.log").read_text()[-3000:]
        assert sorted(titles) == ["Automatic one", "Automatic two"], log_tail
        catalog = CatalogResource()
        for key in added:
            assert catalog.get_project(key).status.value == "published"
            [record] = catalog.publications(key)
            assert record.state == "published" and record.attempts == 1
        # The hand-run project had no publish time and was not launched again by the sensor.
        assert catalog.get_project(spec.key).status.value == "uploaded"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
