"""Security properties of issue 7, each provoked and checked on real outputs.

- User text never reaches a shell or an ffmpeg filter string: no shell anywhere in the code,
  filter graphs hold numbers and labels while every path travels as its own argument (a
  render with a title and a SHORTS_HOME full of filter syntax is in test_bad_inputs.py).
- Project keys, media keys, clip ids and library catalogs cannot escape SHORTS_HOME, the
  library folder or the bucket prefix.
- yt-dlp refuses file:// and private addresses unless allowed, caps download sizes, and what
  it downloads is probed before use.
- Secrets never appear in logs, metadata, exceptions, the catalog or stored files.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import threading
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pytest
from click.testing import CliRunner
from dagster._serdes import serialize_value

from shorts_pipeline.cli import main
from shorts_pipeline.keys import UnsafeKeyError
from shorts_pipeline.models import ClipCandidate, ProjectSettings, PublishRequest, ScriptSettings
from shorts_pipeline.render.errors import ProbeError
from shorts_pipeline.render.geometry import Overlay
from shorts_pipeline.render.probe import MediaInfo, probe_clip
from shorts_pipeline.render.synth import ClipRecipe, make_clip, make_random_bytes
from shorts_pipeline.render.timeline import (
    ClipSegment,
    FilterGraph,
    StillSegment,
    Timeline,
    VoiceCue,
)
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.clip_sources import ClipSourceError, LocalLibrarySource
from shorts_pipeline.resources.fal import FalClient, VideoGenError
from shorts_pipeline.resources.media_store import MediaStoreResource
from shorts_pipeline.resources.youtube import PublishError, YouTubePublisher
from shorts_pipeline.resources.ytdlp_source import YtDlpSource
from tests.helpers import fast_settings, free_port, materialize_project, project_resources
from tests.media_server import MediaServer

PACKAGE = Path(__file__).resolve().parents[1] / "shorts_pipeline"

# --- user text never reaches a shell or a filter string -------------------------------------


def _calls(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    """Every call as `module.function` (for calls on a module name) or `function`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                owner = func.value.id if isinstance(func.value, ast.Name) else "?"
                found.append((f"{owner}.{func.attr}", node))
            elif isinstance(func, ast.Name):
                found.append((func.id, node))
    return found


SHELLS = {
    "os.system",
    "os.popen",
    "os.spawnlp",
    "subprocess.getoutput",
    "subprocess.getstatusoutput",
}
RUNNERS = {f"subprocess.{name}" for name in ("run", "Popen", "call", "check_call", "check_output")}


def test_no_code_runs_a_shell_or_draws_text_with_ffmpeg() -> None:
    problems = []
    runners = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        where = path.relative_to(PACKAGE.parent)
        for name, call in _calls(tree):
            for keyword in call.keywords:
                if keyword.arg == "shell" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                ):
                    problems.append(f"{where}:{call.lineno} {name}(shell=...)")
            if name in SHELLS:
                problems.append(f"{where}:{call.lineno} {name}()")
            if name in RUNNERS:
                runners += 1
                first = call.args[0] if call.args else None
                if isinstance(first, ast.Constant | ast.JoinedStr | ast.BinOp):
                    problems.append(f"{where}:{call.lineno} {name}() with a command string")
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for word in ("drawtext", "subtitles=", "movie=", "amovie="):
                    if word in node.value:
                        problems.append(f"{where}:{node.lineno} {word!r} in a string")
    assert runners >= 3, "the scan found the subprocess calls it is meant to check"
    assert not problems, problems


HOSTILE = "it's [0:v];a,b=c:d\\e"


def _info(path: str, audio: bool = True) -> MediaInfo:
    return MediaInfo(
        path=path,
        duration=4.0,
        width=640,
        height=360,
        rotation=90,
        sar=Fraction(4, 3),
        fps=29.97,
        variable_frame_rate=True,
        video_codec="h264",
        pix_fmt="yuv420p",
        has_audio=audio,
        audio_codec="aac" if audio else None,
        audio_rate=48000 if audio else None,
        audio_channels=2 if audio else None,
        size_bytes=1,
    )


def test_filter_graphs_hold_no_path_and_every_path_is_one_argument(tmp_path: Path) -> None:
    folder = tmp_path / HOSTILE
    paths = {
        name: str(folder / f"{name} {HOSTILE}.{ext}")
        for name, ext in (("clip", "mp4"), ("card", "png"), ("badge", "png"), ("music", "m4a"))
    }
    paths["voice"] = str(folder / f"voice {HOSTILE}.wav")
    badge = Overlay(path=paths["badge"], x=10, y=250, width=300, height=200)
    timeline = Timeline(
        segments=[
            StillSegment(paths["card"], 1.0, motion="zoom_in"),
            ClipSegment(_info(paths["clip"]), 0.5, 2.0, overlays=(badge,)),
        ],
        music=paths["music"],
        voice=[VoiceCue(paths["voice"], 0.3, 1.0)],
    )
    graph = FilterGraph(timeline)

    graphs = graph.video_graph() + ";" + graph.audio_graph()
    arguments = graph.video_input_args() + graph.audio_input_args()
    assert "it's" not in graphs and "\\e" not in graphs and str(folder) not in graphs
    for path in paths.values():
        assert path in arguments, path
        assert arguments[arguments.index(path) - 1] == "-i"


def test_a_file_named_like_an_ffmpeg_protocol_is_read_as_a_file(
    library_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Relative, "data:,x.mp4" would be ffmpeg's data: protocol (and "concat:a|b" would read
    # other files); the probe hands ffmpeg absolute paths.
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    os.link(library_copy / "square.mp4", work / "data:,football.mp4")

    assert probe_clip(Path("data:,football.mp4")).width == 480
    found = LocalLibrarySource(directory=".").search(["football"]).candidates
    assert [c.width for c in found] == [480]


# --- keys and paths stay inside their folders -----------------------------------------------


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


ESCAPING_KEYS = [
    "../escape.txt",
    "projects/../../escape.txt",
    "/etc/passwd",
    "projects//x",
    "projects/x\n",
    "projects/.hidden",
    "projects\\..\\x",
    "",
]


@pytest.mark.parametrize("key", ESCAPING_KEYS)
def test_the_local_media_store_refuses_keys_that_leave_its_root(
    key: str, tmp_path: Path, shorts_home: Path
) -> None:
    source = tmp_path / "file.txt"
    source.write_text("x")
    store = MediaStoreResource()
    before = tree(tmp_path)

    with pytest.raises(UnsafeKeyError, match="unsafe"):
        store.put(source, key)
    with pytest.raises(UnsafeKeyError):
        store.url_for(key)

    assert tree(tmp_path) - before <= {"home/media"}  # the store's own root, made empty


def test_the_s3_media_store_keeps_every_object_under_its_prefix(
    bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    source = tmp_path / "file.txt"
    source.write_text("x")
    store = MediaStoreResource(url=f"s3://{bucket}/prefix")
    for key in ESCAPING_KEYS:
        with pytest.raises(UnsafeKeyError):
            store.put(source, key)
    store.put(source, "projects/p-1/file.txt")

    listed = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").list_objects_v2(
        Bucket=bucket
    )
    assert [o["Key"] for o in listed.get("Contents", [])] == ["prefix/projects/p-1/file.txt"]


@pytest.mark.parametrize("key", ["../../etc/passwd", "a/b", "..", "abc\n", "ABC", "a b"])
def test_a_key_that_is_not_a_project_key_is_refused_everywhere(key: str) -> None:
    with pytest.raises(UnsafeKeyError, match="is not a project key"):
        CatalogResource().get_project(key)
    for command in (["status", key], ["run", key], ["approve", key], ["select", key, "x"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, (command, result.output)
        assert "is not a project key" in result.output


def test_a_partition_with_an_unsafe_key_fails_before_any_file_is_written(
    clip_library: Path, shorts_home: Path
) -> None:
    result = materialize_project(
        "../../escape",
        project_resources(clip_library),
        selection=["search_results"],
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "is not a project key" in str(failure.event_specific_data)
    assert not (shorts_home.parent / "escape").exists()


def test_library_catalog_entries_that_are_paths_are_refused_and_the_rest_still_works(
    library_copy: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside" / "secret-football.mp4"
    outside.parent.mkdir()
    os.link(library_copy / "rabona.mp4", outside)
    hostile = [
        "../../etc/passwd",
        "/etc/passwd",
        str(outside),
        "sub/rabona.mp4",
        "..\\..\\boot.ini",
        "C:rabona.mp4",
        "..",
    ]
    entries = json.loads((library_copy / "catalog.json").read_text())
    for n, file in enumerate(hostile):
        entries.append({"id": f"evil-{n}", "file": file, "title": "Football", "views": 10**9})
    (library_copy / "catalog.json").write_text(json.dumps(entries))

    outcome = LocalLibrarySource(directory=str(library_copy)).search(["football"])

    reasons = dict(outcome.skipped)
    for file in hostile:
        assert reasons[f"catalog.json entry {file!r}"].startswith(
            "refused: `file` must be the name"
        )
    assert {c.id for c in outcome.candidates} == {"rabona", "portrait", "square", "rotated"}
    by_id = {c.id: c for c in outcome.candidates}
    assert by_id["rabona"].views == 1_200_000, "the real entry, not one pinned on by a path"
    assert all(
        Path(c.url.removeprefix("file://")).parent == library_copy for c in outcome.candidates
    )


def test_fetch_reads_only_files_inside_the_library(library_copy: Path, tmp_path: Path) -> None:
    library = LocalLibrarySource(directory=str(library_copy))
    outside = tmp_path / "elsewhere" / "clip.mp4"
    outside.parent.mkdir()
    os.link(library_copy / "rabona.mp4", outside)
    dest = tmp_path / "fetched"
    for url in (
        "file:///etc/passwd",
        outside.as_uri(),
        (library_copy / ".." / "elsewhere" / "clip.mp4").as_uri(),
        f"file://{library_copy}/%2e%2e/elsewhere/clip.mp4",
        "http://127.0.0.1:9/rabona.mp4",
        "file://evil.example/share/rabona.mp4",
    ):
        candidate = ClipCandidate(id="x", source="library", url=url, title="x")
        with pytest.raises(ClipSourceError, match="library"):
            library.fetch(candidate, dest)
    assert not dest.exists() or not list(dest.iterdir())


def test_clips_with_odd_names_and_ids_are_fetched_into_the_destination(
    library_copy: Path, tmp_path: Path
) -> None:
    odd_name = "축구 'skills' [1] 100% #2.mp4"
    os.link(library_copy / "square.mp4", library_copy / odd_name)
    entries = json.loads((library_copy / "catalog.json").read_text())
    entries.append({"id": "../../../../escape", "file": odd_name, "title": "Odd football"})
    (library_copy / "catalog.json").write_text(json.dumps(entries))
    library = LocalLibrarySource(directory=str(library_copy))
    candidate = next(c for c in library.search(["odd"]).candidates)
    dest = tmp_path / "fetched"
    before = tree(tmp_path)

    fetched = library.fetch(candidate, dest)

    assert candidate.id == "../../../../escape"
    assert fetched.parent == dest and probe_clip(fetched).width == 480
    assert {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")} - before == {
        "fetched",
        f"fetched/{fetched.name}",
    }


# --- yt-dlp: addresses, schemes, size -------------------------------------------------------


@pytest.fixture(scope="module")
def served_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("served")
    make_clip(root / "clip.mp4", ClipRecipe(width=320, height=240, seconds=1.5, seed=9))
    make_random_bytes(root / "big.mp4", n=1_300_000)
    (root / "page.mp4").write_text("<!DOCTYPE html><html><body>Sign in</body></html>")
    return root


@pytest.fixture
def served(served_files: Path) -> Iterator[MediaServer]:
    with MediaServer(served_files) as server:
        yield server


def quick(**settings: Any) -> YtDlpSource:
    base: dict[str, Any] = {"socket_timeout": 2.0, "retries": 0, "retry_backoff_seconds": 0.0}
    return YtDlpSource(**(base | settings))


PRIVATE_HOSTS = [
    "127.0.0.1",
    "localhost",
    "[::1]",
    "127.1",
    "2130706433",
    "0x7f000001",
    "[::ffff:127.0.0.1]",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "0.0.0.0",
]


def test_private_addresses_are_refused_before_any_request_unless_allowed(
    served: MediaServer, tmp_path: Path
) -> None:
    for host in PRIVATE_HOSTS:
        url = f"http://{host}:{served.port}/clip.mp4"
        candidate = ClipCandidate(id="generic-clip", source="ytdlp:generic", url=url, title="x")
        with pytest.raises(ClipSourceError, match="allow_private_addresses=true"):
            quick().search_urls([url])
        with pytest.raises(ClipSourceError, match="allow_private_addresses=true"):
            quick().fetch(candidate, tmp_path / "refused")
    assert sum(served.requests.values()) == 0

    allowed = quick(allow_private_addresses=True)
    found = allowed.search_urls([served.url("clip.mp4")]).candidates
    assert len(found) == 1
    assert probe_clip(allowed.fetch(found[0], tmp_path / "fetched")).width == 320


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/clip.mp4", "data:video/mp4;base64,AAAA", "gopher://x/1", "/etc/passwd"]
)
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(ClipSourceError, match=r"unsupported URL|does not support"):
        quick(allow_private_addresses=True).search_urls([url])


def test_file_urls_are_refused_unless_allowed(served_files: Path, tmp_path: Path) -> None:
    url = (served_files / "clip.mp4").as_uri()
    candidate = ClipCandidate(id="generic-clip", source="ytdlp:generic", url=url, title="x")
    with pytest.raises(ClipSourceError, match="allow_file_urls=true"):
        quick().search_urls([url])
    with pytest.raises(ClipSourceError, match="allow_file_urls=true"):
        quick().fetch(candidate, tmp_path / "refused")

    allowed = quick(allow_file_urls=True)
    found = allowed.search_urls([url]).candidates
    assert len(found) == 1
    assert probe_clip(allowed.fetch(found[0], tmp_path / "fetched")).width == 320


def test_downloads_over_the_size_cap_are_refused_and_under_it_probed(
    served: MediaServer, tmp_path: Path, shorts_home: Path
) -> None:
    source = quick(allow_private_addresses=True, max_filesize_mb=1)
    big = source.search_urls([served.url("big.mp4")]).candidates[0]

    with pytest.raises(ClipSourceError, match=r"larger than max_filesize_mb \(1 MB\)"):
        source.fetch(big, tmp_path / "big")
    assert not [p for p in (shorts_home / "cache").rglob("*") if p.is_file() and "big" in p.name]
    assert not (tmp_path / "big").exists() or not list((tmp_path / "big").iterdir())

    small = source.search_urls([served.url("clip.mp4")]).candidates[0]
    assert probe_clip(source.fetch(small, tmp_path / "small")).width == 320

    # A page served under a video name downloads, and the probe (which selections runs on
    # every fetched clip before use) refuses it for what it is.
    page = source.search_urls([served.url("page.mp4")]).candidates[0]
    with pytest.raises(ProbeError, match="HTML page"):
        probe_clip(source.fetch(page, tmp_path / "page"))


class _EndlessVideo(BaseHTTPRequestHandler):
    """Answers with video bytes and no Content-Length, as a live or hostile server does."""

    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.end_headers()
        try:
            for _ in range(200):  # 20 MB at most
                self.wfile.write(b"\0" * 100_000)
        except OSError:
            pass  # the client hung up: what the cap is for

    do_HEAD = do_GET


def test_a_download_without_a_stated_size_is_stopped_at_the_cap(
    tmp_path: Path, shorts_home: Path
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EndlessVideo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = quick(allow_private_addresses=True, max_filesize_mb=1)
        url = f"http://127.0.0.1:{server.server_address[1]}/live.mp4"
        candidate = source.search_urls([url]).candidates[0]
        with pytest.raises(ClipSourceError, match=r"larger than max_filesize_mb \(1 MB\)") as err:
            source.fetch(candidate, tmp_path / "out")
    finally:
        server.shutdown()
        server.server_close()
    stopped = re.search(r"stopped after ([\d.]+) MB", str(err.value))
    assert stopped and float(stopped.group(1)) < 3, "the download ran on past the cap"
    assert not [p for p in (shorts_home / "cache").rglob("*") if p.is_file() and p.stat().st_size]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# --- secrets --------------------------------------------------------------------------------

SECRETS = {
    "OPENAI_API_KEY": "sk-canary-openai-3f9a1c2e7b",
    "FAL_KEY": "fal-canary-id:fal-canary-secret-8d2e61",
    "AWS_SECRET_ACCESS_KEY": "aws-canary-secret-5e1b77c0",
    "YOUTUBE_CLIENT_ID": "yt-canary-client-41c2.apps",
    "YOUTUBE_CLIENT_SECRET": "yt-canary-secret-9f03",
    "YOUTUBE_REFRESH_TOKEN": "yt-canary-refresh-2b7d",
    "SHORTS_WEBHOOK_SECRET": "hook-canary-secret-6a4e",
}


def _texts_of_runs(instance: dg.DagsterInstance) -> list[str]:
    """Every event of every run (messages, metadata, errors) and the run records, as JSON."""
    texts = []
    for run in instance.get_runs():
        texts.append(serialize_value(run))
        texts += [serialize_value(entry) for entry in instance.all_logs(run.run_id)]
    return texts


def _files_under(root: Path) -> list[tuple[str, bytes]]:
    return [(str(p), p.read_bytes()) for p in root.rglob("*") if p.is_file()]


@pytest.mark.slow
def test_secrets_appear_in_no_log_metadata_exception_catalog_or_file(
    bucket: str,
    s3_endpoint: str,
    clip_library: Path,
    shorts_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIACANARYKEYID")
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("FAL_QUEUE_URL", closed)
    monkeypatch.setenv("SHORTS_WEBHOOK_URL", f"{closed}/hook")
    instances = [dg.DagsterInstance.ephemeral(), dg.DagsterInstance.ephemeral()]
    messages: list[str] = []
    catalog = CatalogResource()

    # 1. A project whose OpenAI-compatible writer is on a closed port: it fails, and says
    # why (after the script stage's retries, whose back-off waits overlap the next run).
    writer = ScriptSettings(writer="openai", base_url=f"{closed}/v1", timeout_seconds=2)
    failing = catalog.add_project(
        "Needs the LLM", "explainer", settings=ProjectSettings(broll=False, script=writer)
    )

    def fail() -> None:
        materialize_project(failing.key, project_resources(clip_library), instances[1])

    with ThreadPoolExecutor(max_workers=1) as pool:
        failed = pool.submit(fail)

        # 2. A project end to end, offline providers, media on S3 signed with the canary.
        resources = project_resources(clip_library) | {
            "media_store": MediaStoreResource(
                url=f"s3://{bucket}/media", storage_options={"skip_instance_cache": True}
            )
        }
        ranking = catalog.add_project(
            "Secret-free football",
            keywords=["football"],
            settings=fast_settings(
                count=1, title_seconds=0.5, outro_seconds=0.5, transition="none"
            ),
        )
        assert materialize_project(ranking.key, resources, instances[0]).success

        with pytest.raises(Exception) as raised:
            failed.result()
    messages += traceback.format_exception(raised.value)
    assert any(f"127.0.0.1:{closed.rsplit(':', 1)[1]}" in m for m in messages)

    # 3. fal.ai and YouTube against the same closed port, and the doctor.
    with pytest.raises(VideoGenError) as fal_error:
        FalClient(api_key=SECRETS["FAL_KEY"], queue_url=closed, request_timeout=2).generate(
            "fal-ai/model", {"prompt": "x"}, tmp_path / "segment.mp4", what="segment 1"
        )
    messages += [*traceback.format_exception(fal_error.value), repr(fal_error.value)]
    video = tmp_path / "video.mp4"
    video.write_bytes(b"\0" * 1000)
    request = PublishRequest(
        project_key=ranking.key, idempotency_key="k", title="t", video_path=str(video)
    )
    youtube = YouTubePublisher(token_url=f"{closed}/token", api_base=closed, max_retries=0)
    with pytest.raises(PublishError) as youtube_error:
        youtube.publish(request)
    messages += [*traceback.format_exception(youtube_error.value), repr(youtube)]
    doctor = CliRunner().invoke(main, ["doctor", "--json"])
    messages.append(doctor.output)

    failing_events = _texts_of_runs(instances[1])
    assert any("STEP_FAILURE" in text and "127.0.0.1" in text for text in failing_events)
    captured = capfd.readouterr()
    texts = [
        *_texts_of_runs(instances[0]),
        *failing_events,
        *messages,
        caplog.text,
        captured.out,
        captured.err,
        catalog.get_project(ranking.key).model_dump_json(),
    ]
    files = _files_under(shorts_home)
    assert any(name.endswith("catalog.db") for name, _ in files)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            files.append((f"s3://{bucket}/{item['Key']}", body))
    assert len(files) > 5 and len(texts) > 50
    for name, value in SECRETS.items():
        for text in texts:
            assert value not in text, f"{name} leaked: …{text[text.find(value) - 80 :][:200]}…"
        for where, data in files:
            assert value.encode() not in data, f"{name} leaked into {where}"
