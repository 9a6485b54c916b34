"""A real browser on the real UIs: Playwright drives the machine's Chromium against
`dagster dev` and the preview page (`shorts serve`), both on loopback.

One project is rendered with the CLI (`shorts run`, added with review on); then the Dagster UI
must show our asset graph and the video asset's thumbnail for that partition, and the preview
page must play the MP4 (H.264 High, decoded by Chromium — Debian's build plays it) and record
an approval in the catalog when its Approve button is clicked.

With SHORTS_SCREENSHOTS=DIR set, the pages are saved there as PNGs (docs/screenshots holds
the committed ones). No browser is ever downloaded: Chromium is the Debian package that
`make test` installs (scripts/bootstrap.sh).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from shorts_pipeline.cli import DAGSTER_CONFIG
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.serve import make_server
from tests.helpers import fast_settings, free_port

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("SHORTS_CHROMIUM", "/usr/bin/chromium"))
ASSETS = [
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
TITLE = "Top 2 football skills <to review> & approve"


@pytest.mark.long
@pytest.mark.slow
def test_dagster_ui_shows_graph_and_thumbnail_and_the_preview_plays_and_approves(
    shorts_home: Path, clip_library: Path, tmp_path: Path
):
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is missing ({CHROMIUM}): `make test` installs it with its driver "
            "(scripts/bootstrap.sh test; on Debian: apt-get install chromium chromium-driver). "
            "Never `playwright install`: the test drives the system's Chromium."
        )
    from playwright.sync_api import expect, sync_playwright

    spec = CatalogResource().add_project(
        TITLE,
        keywords=["football"],
        settings=fast_settings(count=2, library=str(clip_library)),
        review=True,
    )
    dagster_home = _prepare_instance(shorts_home, spec.key)
    env = _clean_env(SHORTS_HOME=str(shorts_home), DAGSTER_HOME=str(dagster_home))
    # The render and dagster dev's start-up overlap: each takes tens of seconds here.
    render_log = tmp_path / "shorts-run.log"
    with render_log.open("w") as log:
        render = subprocess.Popen(
            [sys.executable, "-m", "shorts_pipeline.cli", "run", spec.key],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    # dagster dev's daemon gets a catalog of its own, empty: its new-titles sensor would
    # otherwise render the project again and put its review back to pending mid-test. The UI
    # reads the Dagster instance, which both share.
    daemon_env = {**env, "SHORTS_CATALOG_URL": f"sqlite:///{tmp_path / 'daemon-catalog.db'}"}
    try:
        with _dagster_dev(daemon_env, tmp_path / "dagster-dev.log") as dagster_url:
            assert render.wait(timeout=240) == 0, render_log.read_text()[-3000:]
            assert CatalogResource().review(spec.key).state == "pending"

            preview = make_server("127.0.0.1", 0)
            threading.Thread(target=preview.serve_forever, daemon=True).start()
            threading.Thread(target=preview.records.warm, daemon=True).start()  # as run_server
            shots = _screenshot_dir()
            try:
                with sync_playwright() as pw:
                    browser = pw.chromium.launch(
                        executable_path=str(CHROMIUM),
                        headless=True,
                        args=[
                            *(["--no-sandbox"] if os.geteuid() == 0 else []),
                            "--autoplay-policy=no-user-gesture-required",
                        ],
                    )
                    context = browser.new_context(viewport={"width": 1400, "height": 900})
                    # Dagster's newsletter dialog (shown on localhost) would cover the graph.
                    context.add_init_script("window.localStorage.setItem('communityNux', '1')")
                    page = context.new_page()
                    page.set_default_timeout(60_000)

                    # The asset graph (global lineage), every group expanded (Alt+E).
                    page.goto(f"{dagster_url}/asset-groups")
                    expect(page.get_by_text("production").first).to_be_visible()
                    page.keyboard.press("Alt+e")
                    for name in ASSETS:
                        expect(page.get_by_text(name, exact=True).first).to_be_visible()
                    # Once the asset states load, the rendered partition turns `video` green.
                    materialized = page.locator(
                        "[style*='--color-background-green']",
                        has=page.get_by_text("video", exact=True),
                    )
                    expect(materialized.last).to_be_visible()
                    _shot(page, shots, "dagster-asset-graph.png")

                    # The video asset of the rendered partition: its thumbnail is inline Markdown.
                    page.goto(f"{dagster_url}/assets/video?view=partitions&partition={spec.key}")
                    page.get_by_text("[Show Markdown]", exact=True).first.click()
                    thumb = page.locator("img[src^='data:image/jpeg;base64,']").first
                    expect(thumb).to_be_visible()
                    size = thumb.evaluate("img => [img.naturalWidth, img.naturalHeight]")
                    assert size[0] == 120 and size[1] > 200, size  # decoded, 9:16
                    _shot(page, shots, "dagster-video-thumbnail.png")

                    # The preview page: the list, then the project's player.
                    media: list[tuple[int, str | None]] = []
                    page.on(
                        "response",
                        lambda r: (
                            media.append((r.status, r.headers.get("content-range")))
                            if r.url.endswith("/video.mp4")
                            else None
                        ),
                    )
                    page.goto(preview.url)
                    row_thumb = page.locator(f"img[src='/media/{spec.key}/thumbnail.jpg']")
                    expect(row_thumb).to_be_visible()
                    assert row_thumb.evaluate("img => img.naturalWidth") >= 360  # decoded
                    expect(page.get_by_text(TITLE, exact=True)).to_be_visible()  # escaped, intact
                    _shot(page, shots, "preview-projects.png")
                    page.get_by_text(TITLE, exact=True).click()
                    page.wait_for_url(f"**/projects/{spec.key}")
                    # The checks of the run that made the video, read from the Dagster instance.
                    expect(page.get_by_text(re.compile(r"^(\d+) of \1 passed"))).to_be_visible()
                    played = page.evaluate(PLAY_VIDEO)
                    assert played["error"] is None, played
                    assert played["currentTime"] > 0.5, played
                    assert played["readyState"] >= 2, played
                    assert (played["videoWidth"], played["videoHeight"]) == (1080, 1920), played
                    assert played["decodedFrames"] > 10, played
                    ranges = [(s, r) for s, r in media if s == 206]
                    assert ranges and all(r and r.startswith("bytes ") for _, r in ranges), media
                    _shot(page, shots, "preview-project.png", full_page=True)

                    # Approve: the form posts to the same code as `shorts approve`.
                    page.get_by_label("Reviewer").first.fill("Playwright")
                    page.get_by_role("button", name="Approve").click()
                    page.wait_for_url(f"**/projects/{spec.key}?decision=approved")
                    expect(page.get_by_role("status")).to_have_text("Approved by Playwright.")
                    browser.close()
            finally:
                preview.shutdown()
                preview.server_close()
    finally:
        if render.poll() is None:  # dagster dev failed first: the render is not needed
            render.kill()
            render.wait()
    review = CatalogResource().review(spec.key)
    assert (review.state, review.by) == ("approved", "Playwright")


# Plays the preview's <video> for a moment and reports what the element saw.
PLAY_VIDEO = """async () => {
  const v = document.querySelector('video');
  await v.play();
  const start = performance.now();
  while (v.currentTime < 0.6 && performance.now() - start < 20000 && !v.error) {
    await new Promise(r => setTimeout(r, 100));
  }
  v.pause();
  return {
    currentTime: v.currentTime,
    readyState: v.readyState,
    error: v.error ? v.error.message || String(v.error.code) : null,
    videoWidth: v.videoWidth,
    videoHeight: v.videoHeight,
    decodedFrames: v.getVideoPlaybackQuality().totalVideoFrames,
  };
}"""


def _prepare_instance(shorts_home: Path, key: str) -> Path:
    """The Dagster home as the CLI makes it, its storage created before two processes
    (the render, dagster dev) open it at once."""
    home = shorts_home / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(DAGSTER_CONFIG)
    instance = dg.DagsterInstance.from_config(str(home))
    instance.add_dynamic_partitions("project", [key])
    instance.get_runs(limit=1)
    instance.dispose()
    return home


@contextmanager
def _dagster_dev(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """`dagster dev` on a free loopback port, until its code location has loaded."""
    port = free_port()
    log = log_path.open("w")
    # A child started from a script inherits SIGINT ignored; reset it so SIGTERM (which
    # Dagster maps to its SIGINT handler) stops the server.
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os,signal,sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
            "os.execv(sys.argv[1], sys.argv[1:])",
            str(Path(sys.executable).parent / "dagster"),
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
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 150
        while not _asset_keys(url):
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.fail("dagster dev did not load our code: " + log_path.read_text()[-3000:])
            time.sleep(1)
        yield url
    finally:
        # Killed, not stopped: a clean stop takes 5-10 s and its home is thrown away anyway.
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        log.close()


def _asset_keys(url: str) -> list[Any]:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return list(json.loads(resp.read())["data"]["assetNodes"])
    except (OSError, KeyError, TypeError, ValueError):
        return []


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "SHORTS_", "AWS_"))}
    return {**env, **extra}


def _screenshot_dir() -> Path | None:
    where = os.environ.get("SHORTS_SCREENSHOTS")
    if not where:
        return None
    path = Path(where).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _shot(page: Any, folder: Path | None, name: str, full_page: bool = False) -> None:
    if folder is not None:
        page.screenshot(path=str(folder / name), full_page=full_page)
