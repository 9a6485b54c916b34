"""Faults, provoked for real: a worker SIGKILLed mid-render, a full disk, a run cancelled
from the UI, two runs of one project at once; and how a failure reads and resumes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from itertools import permutations
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from click.testing import CliRunner

from shorts_pipeline.cli import main
from shorts_pipeline.locks import SCRATCH_DIR, TEMP_FILE, project_lock, sweep_stale_temp, working
from shorts_pipeline.models import ProjectSettings
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.media_store import MediaStoreError, MediaStoreResource
from tests.helpers import fast_settings, project_resources

SHORTS = [sys.executable, "-m", "shorts_pipeline.cli"]
REPO = Path(__file__).resolve().parents[1]
UPSTREAM = ["search_results", "selections", "script", "narration", "slides", "segments"]


def tiny_settings(library: str, **overrides: Any) -> ProjectSettings:
    """A 2.8 s ranking (two 1 s clips, no music): these tests are about what happens around
    a render, so the render is as short as it can be and still be a real one."""
    values = dict(
        count=2, clip_min_seconds=1.0, clip_max_seconds=1.0, outro_seconds=0.5, music=None
    )
    return fast_settings(library=library, **{**values, **overrides})


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "SHORTS_"))}
    env["SHORTS_HOME"] = str(home)
    return env


def temp_leftovers(home: Path) -> list[Path]:
    """Everything temporary under `home`: scratch folders at the top of the cache, and
    temp-named files anywhere."""
    cache = home / "cache"
    scratch = [p for p in cache.iterdir() if SCRATCH_DIR.match(p.name)] if cache.is_dir() else []
    files = [p for p in home.rglob("*") if TEMP_FILE.search(p.name)]
    return scratch + files


def ffmpeg_working_in(home: Path) -> list[str]:
    """The ffmpeg processes whose arguments name a path under `home`."""
    ps = subprocess.run(
        ["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True
    )
    return [
        line for line in ps.stdout.splitlines() if "ffmpeg" in line.split()[1] and str(home) in line
    ]


def wait_for_render(home: Path, proc: subprocess.Popen[str] | None = None, timeout=180) -> None:
    """Until ffmpeg is writing the video pass's temp file under `home`."""
    deadline = time.monotonic() + timeout
    while not (list(home.rglob("*.partial.mp4")) and ffmpeg_working_in(home)):
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the run ended before the render: {proc.communicate()}")
        assert time.monotonic() < deadline, "the render never started"
        time.sleep(0.1)


def steps_started(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
    return [r.event_log_entry.dagster_event.step_key for r in records]


def materialisations(instance: dg.DagsterInstance, asset: str) -> list[dg.EventLogRecord]:
    records_filter = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset))
    return list(instance.fetch_materializations(records_filter, limit=100).records)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_failed_or_killed_render_resumes_from_video_and_leaves_nothing_partial(
    shorts_home, clip_library
):
    """Part 2 and the SIGKILL fault: a stage fails with one readable line; after the fix,
    `--resume` runs only video and upload; that render is SIGKILLed (the whole process
    group, while ffmpeg writes); nothing partial is visible, and the next `--resume` sweeps
    the leftovers, finishes, and still has not re-made anything upstream."""
    catalog = CatalogResource()
    library = str(clip_library)
    spec = catalog.add_project(
        "Killed mid-render",
        keywords=["football"],
        settings=tiny_settings(library, music="/no/such/bed.m4a"),
    )
    code, out = invoke("run", spec.key)
    assert code == 1
    [failed] = [line for line in out.splitlines() if line.startswith("failed")]
    assert failed == (
        f"failed {spec.key}: video: music file /no/such/bed.m4a does not exist; set music to "
        "'bundled', a file, or none"
    )
    assert "Traceback" not in out and "Stack Trace" not in out
    assert f"shorts run {spec.key} --resume" in out
    assert catalog.last_error(spec.key) == failed.removeprefix(f"failed {spec.key}: ")

    catalog.update_settings(spec.key, tiny_settings(library))
    proc = subprocess.Popen(
        [*SHORTS, "run", spec.key, "--resume"],
        env=cli_env(shorts_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    wait_for_render(shorts_home, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    video = shorts_home / "media" / "projects" / spec.key / "video.mp4"
    assert not video.exists()  # no render was ever finished: nothing under the real name
    media_files = [p for p in (shorts_home / "media").rglob("*") if p.is_file()]
    assert not [p for p in media_files if TEMP_FILE.search(p.name)]
    left = temp_leftovers(shorts_home)
    assert any(p.name.endswith(".partial.mp4") for p in left)
    # Everything left is recognisably temporary: a scratch folder at the top of the cache.
    scratch = [p for p in left if p.parent == shorts_home / "cache"]
    assert scratch and all(any(p.is_relative_to(s) for s in scratch) for p in left)
    assert not ffmpeg_working_in(shorts_home)

    os.environ["DAGSTER_HOME"] = str(shorts_home / "dagster")
    instance = dg.DagsterInstance.get()
    killed = instance.get_runs(limit=1)[0]
    assert killed.status == dg.DagsterRunStatus.STARTED  # its process could not say otherwise
    assert steps_started(instance, killed.run_id) == ["video"]

    code, out = invoke("run", spec.key, "--resume")
    assert code == 0, out
    assert "reusing search, select, script, voice, slides, segments; running video, upload" in out
    assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
    last = instance.get_runs(limit=1)[0]
    assert last.tags["shorts/resumed_from"] == killed.run_id
    assert steps_started(instance, last.run_id) == ["video", "upload"]
    for stage in UPSTREAM:  # made once, by the first run
        assert len(materialisations(instance, stage)) == 1, stage
    assert temp_leftovers(shorts_home) == []  # swept when the run started
    [record] = materialisations(instance, "video")
    size = record.asset_materialization.metadata["size_mb"].value
    assert round(video.stat().st_size / 1e6, 2) == size
    [upload] = materialisations(instance, "upload")
    assert upload.asset_materialization.metadata["sha256"].value == sha256(video)


@pytest.mark.slow
def test_a_run_cancelled_from_the_ui_stops_ffmpeg_and_cleans_up(shorts_home, clip_library):
    """What the UI's Terminate button does: the DefaultRunLauncher asks the code server to
    cancel, the run worker gets SIGINT; ffmpeg must die with the step, the run end CANCELED
    and the render's temp files go."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import ModuleTarget

    from shorts_pipeline.definitions import defs

    os.environ["DAGSTER_HOME"] = str(shorts_home / "dagster")
    (shorts_home / "dagster").mkdir()
    spec = CatalogResource().add_project(
        "Cancelled",
        keywords=["football"],
        settings=tiny_settings(str(clip_library)),
    )
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions("project", [spec.key])
    job = defs.resolve_job_def("produce_project")
    # The code server starts in a subprocess (slow); make the upstream stages meanwhile.
    loaded: dict[str, WorkspaceProcessContext] = {}
    target = ModuleTarget(
        module_name="shorts_pipeline.definitions",
        attribute=None,
        working_directory=str(REPO),
        location_name="shorts_pipeline",
    )
    loader = threading.Thread(
        target=lambda: loaded.setdefault("w", WorkspaceProcessContext(instance, target))
    )
    loader.start()
    upstream = job.execute_in_process(
        partition_key=spec.key,
        instance=instance,
        asset_selection=[dg.AssetKey(a) for a in UPSTREAM],
    )
    assert upstream.success
    loader.join()
    with loaded["w"] as process_context:
        workspace = process_context.create_request_context()
        remote = (
            workspace.get_code_location("shorts_pipeline")
            .get_repository("__repository__")
            .get_full_job("produce_project")
        )
        video_only = {dg.AssetKey("video")}
        run = instance.create_run_for_job(
            job_def=job.get_subset(asset_selection=video_only),
            asset_selection=frozenset(video_only),
            remote_job_origin=remote.get_remote_origin(),
            job_code_origin=remote.get_python_origin(),
            tags={"dagster/partition": spec.key},
        )
        instance.launch_run(run.run_id, workspace)
        wait_for_render(shorts_home)
        assert instance.run_launcher.terminate(run.run_id)
        deadline = time.monotonic() + 60
        while not instance.get_run_by_id(run.run_id).is_finished:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
    assert not ffmpeg_working_in(shorts_home)
    assert temp_leftovers(shorts_home) == []
    assert not (shorts_home / "media" / "projects" / spec.key / "video.mp4").exists()


def test_terminate_in_the_ui_interrupts_a_cli_run_like_ctrl_c(shorts_home, monkeypatch):
    """A `shorts run` shows in the UI too, but Terminate cannot reach an in-process run (no
    code server to ask: terminate() says False); it marks the run CANCELING, and the CLI's
    progress follower turns that into the SIGINT that Ctrl-C sends, whose handling (ffmpeg
    killed, temp files removed) tests/test_cli.py checks end to end."""
    from shorts_pipeline.cli import _bar, _follow_run

    monkeypatch.setenv("DAGSTER_HOME", str(shorts_home / "dagster"))
    (shorts_home / "dagster").mkdir()
    instance = dg.DagsterInstance.get()  # on disk: its launcher can terminate

    @dg.op
    def render() -> None: ...

    @dg.job
    def cli_job() -> None:
        render()

    run = instance.create_run_for_job(cli_job)
    interrupts: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signo, _: interrupts.append(signo))
    done, cancelled = threading.Event(), threading.Event()
    try:
        with _bar("key") as (progress, task):
            args = (instance, run.run_id, done, progress, task, None, cancelled)
            follower = threading.Thread(target=_follow_run, args=args)
            follower.start()
            assert not instance.run_launcher.terminate(run.run_id)
            deadline = time.monotonic() + 10
            while not interrupts and time.monotonic() < deadline:
                time.sleep(0.05)
            done.set()
            follower.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert interrupts == [signal.SIGINT] and cancelled.is_set()
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELING


@pytest.mark.slow
def test_two_runs_of_one_project_at_once_take_turns_and_the_record_matches_the_file(
    shorts_home, clip_library, tmp_path, monkeypatch
):
    """Two in-process runs of the same partition with different settings (one catalog each:
    fade vs. no transition) start together. The project lock makes the second wait for the
    first, so the video in the store is the last run's and so is what Dagster recorded."""
    monkeypatch.setenv("DAGSTER_HOME", str(shorts_home / "dagster"))
    (shorts_home / "dagster").mkdir()
    instance = dg.DagsterInstance.get()
    catalogs = {}
    for transition in ("fade", "none"):
        catalog = CatalogResource(url=f"sqlite:///{tmp_path / transition}.db")
        settings = tiny_settings(str(clip_library), transition=transition)
        spec = catalog.add_project("Raced", keywords=["football"], settings=settings)
        catalogs[transition] = catalog
    key = spec.key
    resources = {t: {**project_resources(clip_library), "catalog": c} for t, c in catalogs.items()}
    instance.add_dynamic_partitions("project", [key])
    from shorts_pipeline.assets import production_assets

    first = dg.materialize(
        production_assets,
        partition_key=key,
        instance=instance,
        resources=resources["fade"],
        selection=UPSTREAM,
    )
    assert first.success
    start = threading.Barrier(2)
    results: dict[str, dg.ExecuteInProcessResult] = {}

    def render(transition: str) -> None:
        start.wait()
        results[transition] = dg.materialize(
            production_assets,
            partition_key=key,
            instance=instance,
            resources=resources[transition],
            selection=["video", "upload"],
        )

    threads = [threading.Thread(target=render, args=(t,)) for t in catalogs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.success for r in results.values())
    sizes = {t: r.output_for_node("video").size_bytes for t, r in results.items()}
    assert sizes["fade"] != sizes["none"]  # two different videos, so a mix-up would show

    def waited(result: dg.ExecuteInProcessResult) -> bool:
        return any(
            (e.user_message or "").startswith(f"waiting for the other run of {key}")
            for e in instance.all_logs(result.run_id)
        )

    [(first_r, second_r)] = [(a, b) for a, b in permutations(results.values()) if waited(b)]
    assert not waited(first_r)

    def render_span(result: dg.ExecuteInProcessResult) -> tuple[float, float]:
        kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
        records = instance.get_records_for_run(result.run_id, of_type=kinds).records
        [start_at, end_at] = [
            r.timestamp for r in records if r.event_log_entry.dagster_event.step_key == "video"
        ]
        return start_at, end_at

    assert render_span(first_r)[1] < render_span(second_r)[0]  # one render after the other

    video = shorts_home / "media" / "projects" / key / "video.mp4"
    [latest] = list(
        instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("video")), limit=1
        ).records
    )
    assert latest.run_id == second_r.run_id
    assert video.stat().st_size == second_r.output_for_node("video").size_bytes
    upload = second_r.output_for_node("upload")
    assert upload.sha256 == sha256(video)
    assert sha256(Path(upload.url.removeprefix("file://"))) == upload.sha256
    assert temp_leftovers(shorts_home) == []


def test_shorts_run_refuses_a_project_another_process_is_rendering(shorts_home):
    spec = CatalogResource().add_project("Busy", keywords=["football"])
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from shorts_pipeline.locks import project_lock
                with project_lock({spec.key!r}, "run-elsewhere"):
                    print("held", flush=True)
                    time.sleep(60)
                """
            ),
        ],
        env=cli_env(shorts_home),
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        code, out = invoke("run", spec.key)
        assert code == 3  # busy (shorts_pipeline/cli.py EXIT_BUSY)
        assert f"busy {spec.key} is already rendering (pid {holder.pid}, run run-else" in out
    finally:
        holder.kill()
        holder.wait()
    with project_lock(spec.key, "mine"):  # released with the process that held it
        pass


def test_stale_temp_files_are_swept_but_not_a_live_workers(shorts_home):
    cache = shorts_home / "cache"
    dead = [cache / "video-abcd1234", cache / "segments-x1y2z3w4"]
    for folder in dead:
        folder.mkdir(parents=True)
        (folder / ".video.mp4.123-abcdef.partial.mp4").write_bytes(b"half")
    media = shorts_home / "media" / "projects" / "p"
    media.mkdir(parents=True)
    (media / "video.mp4.0123abcd.partial").write_bytes(b"half")
    (media / "video.mp4").write_bytes(b"whole")
    kept = [cache / "probe-cache.json", cache / "music" / "bed-v1.m4a"]
    for path in kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"keep")
    time.sleep(0.05)
    # A live worker in another process started after those were left, and is writing now.
    live = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import tempfile, time
                from shorts_pipeline.home import cache_dir
                from shorts_pipeline.locks import working
                with working():
                    d = tempfile.mkdtemp(prefix="video-", dir=cache_dir())
                    open(d + "/.video.mp4.9-abcdef.partial.mp4", "wb").write(b"growing")
                    print(d, flush=True)
                    time.sleep(60)
                """
            ),
        ],
        env=cli_env(shorts_home),
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert live.stdout is not None
        in_use = Path(live.stdout.readline().strip())
        swept = sweep_stale_temp(cache, also=[shorts_home / "media"])
        removed = [p for p in swept if shorts_home in p.parents]  # not the system temp's
        assert sorted(removed) == sorted([*dead, media / "video.mp4.0123abcd.partial"])
        assert in_use.is_dir() and all(p.exists() for p in kept)
        assert (media / "video.mp4").read_bytes() == b"whole"
    finally:
        live.kill()
        live.wait()
    with working():  # the live one died: what it left is stale now
        assert in_use in sweep_stale_temp(cache)
        assert not in_use.exists()


def test_the_media_store_says_the_disk_is_full_and_keeps_nothing_partial(tiny_disk, tmp_path):
    store = MediaStoreResource(url=str(tiny_disk))
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(os.urandom(256 * 1024))
    with pytest.raises(MediaStoreError) as caught:
        store.put(clip, "projects/p/clip.mp4")
    message = str(caught.value)
    assert "\n" not in message
    assert f"storing projects/p/clip.mp4 in the media store {tiny_disk} failed" in message
    assert f"no space left on device: the disk holding {tiny_disk}/projects/p is full" in message
    assert [p for p in tiny_disk.rglob("*") if p.is_file() and p.name != "filler"] == []


@pytest.mark.slow
def test_a_render_on_a_full_disk_fails_in_one_line_and_keeps_nothing_partial(tiny_disk, tmp_path):
    from PIL import Image

    from shorts_pipeline.render.ffmpeg_run import DiskFullError
    from shorts_pipeline.render.timeline import StillSegment, Timeline, render_timeline

    card = tmp_path / "card.png"
    Image.new("RGB", (1080, 1920), (200, 40, 40)).save(card)
    timeline = Timeline(segments=[StillSegment(str(card), 2.0)], transition="none")
    with pytest.raises(DiskFullError) as caught:
        render_timeline(timeline, tiny_disk / "video.mp4")
    message = str(caught.value)
    assert message.startswith("render of video.mp4 failed: no space left on device: ")
    assert f"the disk holding {tiny_disk} is full (0 bytes free)" in message
    assert "\n" not in message
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]


def test_a_file_size_limit_is_reported_as_such(tmp_path):
    """RLIMIT_FSIZE (`ulimit -f`): ffmpeg is killed by SIGXFSZ, Python gets EFBIG; both read
    as 'file too large' with the limit, and nothing partial stays in the store."""
    script = textwrap.dedent(
        f"""
        import os, resource
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
        from shorts_pipeline.render.ffmpeg_run import DiskFullError, run_ffmpeg
        from shorts_pipeline.resources.media_store import MediaStoreError, MediaStoreResource
        out = {str(tmp_path / "big.mp4")!r}
        try:
            run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=s=640x360:d=5", "-c:v", "libx264",
                        "-preset", "ultrafast", out], what="encode of big.mp4")
        except DiskFullError as err:
            print("ffmpeg:", err)
        src = {str(tmp_path / "src.bin")!r}
        with open(src, "wb") as f:
            f.write(b"x" * 60 * 1024)
        store = MediaStoreResource(url={str(tmp_path / "media")!r})
        try:
            with open(src, "ab") as f:
                f.write(b"x" * 8 * 1024)
        except OSError as err:
            print("python:", err.errno)
        os.truncate(src, 60 * 1024)
        store.put(src, "a/ok.bin")
        try:
            store.put_bytes(b"y" * 100 * 1024, "a/big.bin")
        except MediaStoreError as err:
            print("store:", err)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    assert lines["ffmpeg"] == (
        f"encode of big.mp4 failed: file too large: writing {tmp_path / 'big.mp4'} went past "
        "the largest file this process may write (64.0 KB; `ulimit -f`): raise the limit"
    )
    assert lines["python"] == "27"  # EFBIG
    assert lines["store"].startswith("storing a/big.bin failed while writing its temp file: ")
    assert "file too large" in lines["store"]
    leftovers = sorted(p.name for p in (tmp_path / "media").rglob("*") if p.is_file())
    assert leftovers == ["ok.bin"]


def test_dagster_dev_queues_a_second_run_of_a_project(shorts_home, monkeypatch):
    """The dagster.yaml the CLI writes limits runs to one per partition (tag concurrency of
    the queued run coordinator), and replaces the earlier version it wrote."""
    from shorts_pipeline.cli import _OLD_DAGSTER_CONFIGS

    home = shorts_home / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(_OLD_DAGSTER_CONFIGS[0])
    assert invoke("status")[0] == 0
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    queue = dg.DagsterInstance.get().get_concurrency_config().run_queue_config
    assert queue is not None and queue.max_concurrent_runs == 2
    assert queue.tag_concurrency_limits == [
        {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]


def test_only_network_stages_retry_and_with_back_off():
    from shorts_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    policies = {
        key.to_user_string(): graph.get(key).assets_def.op.retry_policy
        for key in graph.get_all_asset_keys()
    }
    network = {"script", "narration", "segments"}
    for name, policy in policies.items():
        if name in network:
            assert policy is not None and policy.max_retries >= 1, name
            assert policy.backoff == dg.Backoff.EXPONENTIAL and policy.delay, name
        else:
            assert policy is None, name


def test_an_ffmpeg_failure_says_why_on_its_first_line(tmp_path):
    from shorts_pipeline.render.ffmpeg_run import FfmpegError, run_ffmpeg

    missing = tmp_path / "missing-badge.png"
    with pytest.raises(FfmpegError) as caught:
        run_ffmpeg(["-i", str(missing), str(tmp_path / "out.mp4")], what="render of out.mp4")
    first, *rest = str(caught.value).splitlines()
    assert first == (
        f"render of out.mp4 failed (ffmpeg exit 1): {missing}: No such file or directory"
    )
    assert rest  # the log's tail follows, for the Dagster UI


def test_one_line_failure_messages_for_raw_errors():
    from shorts_pipeline.cli import _one_line

    assert _one_line(
        "shorts_pipeline.resources.media_store.MediaStoreError: storing x failed: why\nmore"
    ) == ("storing x failed: why")
    full = _one_line("OSError: [Errno 28] No space left on device: '/nowhere/at/all.png'")
    assert full.startswith("no space left on device: the disk holding / is full (")


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A full filesystem: a 1 MB tmpfs (needs root) with every byte taken by a filler."""
    mount = tmp_path / "tiny-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"no tmpfs here ({done.stderr.strip()}); the RLIMIT_FSIZE test still runs")
    try:
        with open(mount / "filler", "wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError:
                pass
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_json_of_a_busy_run_says_why(shorts_home):
    spec = CatalogResource().add_project("Busy json", keywords=["football"])
    with project_lock(spec.key, "someone-else-run"):
        # The same process, another owner: refused too (two threads are two runs).
        code, out = invoke("run", spec.key, "--json")
    assert code == 3  # busy
    payload = json.loads(out[out.index("{") :])
    assert payload["success"] is False
    assert payload["error"].startswith(f"{spec.key} is already rendering (pid {os.getpid()}")
