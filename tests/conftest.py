"""Shared fixtures: an isolated SHORTS_HOME per test and a small real clip library."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import boto3
import pytest

from shorts_pipeline.render.synth import ClipRecipe, make_clip
from tests.helpers import free_port
from tests.openai_server import OpenAIServer

# Environment a developer may have set that would leak real state into tests.
_ISOLATED_ENV = [
    "SHORTS_HOME",
    "SHORTS_CATALOG_URL",
    "SHORTS_MEDIA_URL",
    "SHORTS_LIBRARY",
    "DAGSTER_HOME",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "FAL_KEY",
    "FAL_QUEUE_URL",
    "SHORTS_WEBHOOK_URL",
    "SHORTS_WEBHOOK_SECRET",
    "YOUTUBE_CLIENT_ID",
    "YOUTUBE_CLIENT_SECRET",
    "YOUTUBE_REFRESH_TOKEN",
]

SMALL_LIBRARY = {
    # file name: (recipe, catalog entry)
    "rabona.mp4": (
        ClipRecipe(width=640, height=360, seconds=4.0, fps=30, audio="stereo", seed=1),
        {
            "title": "Insane rabona goal football skills",
            "views": 1_200_000,
            "likes": 80_000,
            "published": "2026-06-01",
            "tags": ["football", "skills"],
        },
    ),
    "portrait.mp4": (
        ClipRecipe(width=360, height=640, seconds=3.5, fps=25, audio="none", seed=2),
        {
            "title": "Street football nutmeg skills",
            "views": 300_000,
            "likes": 30_000,
            "published": "2026-09-01",
            "tags": ["football"],
        },
    ),
    "square.mp4": (
        ClipRecipe(
            width=480, height=480, seconds=3.0, fps=60, audio="mono", audio_rate=44100, seed=3
        ),
        {
            "title": "Freestyle football juggling",
            "views": 50_000,
            "likes": 9_000,
            "published": "2025-01-01",
            "tags": ["football", "freestyle"],
        },
    ),
    "rotated.mp4": (
        ClipRecipe(width=640, height=360, seconds=3.0, fps=30, audio="stereo", rotation=90, seed=4),
        {
            "title": "Phone video: football skills in the park",
            "views": 9_000,
            "likes": 700,
            "published": "2026-10-01",
            "tags": ["football", "phone"],
        },
    ),
    "cats.mp4": (
        ClipRecipe(width=640, height=360, seconds=3.0, fps=30, audio="stereo", seed=5),
        {
            "title": "Cat plays piano",
            "views": 5_000_000,
            "likes": 100_000,
            "published": "2026-01-01",
            "tags": ["cats"],
        },
    ),
}


# The fake secret the S3 tests use; they assert it never appears in a message.
S3_SECRET = "s3cr3t-never-printed"


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


# The fake key the OpenAI-compatible tests use; they assert it never appears in a message.
OPENAI_TEST_KEY = "sk-test-never-printed"


@pytest.fixture
def openai_server(monkeypatch: pytest.MonkeyPatch):
    """A local OpenAI-compatible server (chat + speech) and the environment pointing at it."""
    server = OpenAIServer().start()
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_TEST_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    yield server
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("S3_ENDPOINT_URL", s3_endpoint)
    name = f"shorts-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture(autouse=True)
def shorts_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own SHORTS_HOME and no leaked configuration."""
    for name in _ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("SHORTS_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def clip_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small library of real clips (several shapes) with a catalog.json; built once."""
    root = tmp_path_factory.mktemp("library")
    entries = []
    for name, (recipe, meta) in SMALL_LIBRARY.items():
        make_clip(root / name, recipe)
        entries.append({"id": Path(name).stem, "file": name, **meta})
    (root / "catalog.json").write_text(json.dumps(entries))
    return root


@pytest.fixture
def library_copy(clip_library: Path, tmp_path: Path) -> Path:
    """A per-test copy of the library that a test may change: clips hard-linked (never
    written), the catalog copied (tests rewrite it)."""
    root = tmp_path / "library"
    root.mkdir()
    for item in clip_library.iterdir():
        if item.suffix == ".json":
            shutil.copyfile(item, root / item.name)
        else:
            os.link(item, root / item.name)
    return root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests that mostly wait (dagster dev on its ticks, the whole demo) run first, so on
    two workers their waiting overlaps with the rest instead of ending the run alone."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("long") else 1)
