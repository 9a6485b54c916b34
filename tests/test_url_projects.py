"""Ranking projects made from URLs: yt-dlp against a local web server, media on local S3."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from shorts_pipeline.cli import main
from shorts_pipeline.models import ClipCandidate
from shorts_pipeline.render.synth import ClipRecipe, make_clip
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.ytdlp_source import YtDlpSource
from tests.helpers import fast_settings, materialize_project, project_resources
from tests.media_server import MediaServer


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    """A web site with three videos: a direct MP4, a <video> page and an og:video page."""
    root = tmp_path_factory.mktemp("site")
    for i, shape in enumerate([(640, 360), (360, 640), (480, 480)]):
        make_clip(
            root / f"clip{i}.mp4",
            ClipRecipe(width=shape[0], height=shape[1], seconds=3, audio="stereo", seed=40 + i),
        )
    with MediaServer(root) as srv:
        srv.add_page(
            "/watch/1",
            "<html><head><title>Bicycle kick</title></head><body>"
            f'<video src="{srv.url("clip1.mp4")}"></video></body></html>',
        )
        srv.add_page(
            "/watch/2",
            '<html><head><meta property="og:title" content="Panenka">'
            f'<meta property="og:video" content="{srv.url("clip2.mp4")}">'
            "</head><body></body></html>",
        )
        srv.add_status("/watch/gone", 404)
        yield srv


def resources(bucket: str, library: Path) -> dict[str, Any]:
    # Tests serve from loopback, which a real deployment refuses.
    ytdlp = YtDlpSource(allow_private_addresses=True, socket_timeout=5, retries=1)
    return project_resources(library, media_url=f"s3://{bucket}/media", ytdlp=ytdlp)


def test_project_from_urls_with_media_on_s3_passes_every_check(site, bucket, s3_endpoint, tmp_path):
    urls = [
        site.url("clip0.mp4"),
        site.url("/watch/1"),
        site.url("/watch/gone"),
        site.url("/watch/2"),
    ]
    settings = fast_settings(urls=urls)
    spec = CatalogResource().add_project("From the web", settings=settings)
    result = materialize_project(spec.key, resources(bucket, tmp_path))
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 18 and all(c.passed for c in checks)

    frame = result.output_for_node("search_results")
    assert len(frame) == 3 and set(frame["source"]) <= {"ytdlp:generic", "ytdlp:html5"}
    mats = {m.asset_key.path[-1]: m for m in result.get_asset_materialization_events()}
    skipped = mats["search_results"].materialization.metadata["skipped"].value
    assert "/watch/gone" in skipped and "404" in skipped

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    sidecars = [k for k in keys if k.startswith("media/clips/") and k.endswith(".info.json")]
    assert len(sidecars) == 3
    body = s3.get_object(Bucket=bucket, Key=sidecars[0])["Body"].read()
    assert json.loads(body)["url"].startswith(f"http://127.0.0.1:{site.port}/")
    assert f"media/projects/{spec.key}/video.mp4" in keys

    # Another project choosing the same clip takes it from the download cache: no request.
    before = site.count("clip0.mp4")
    row = frame[frame["url"] == site.url("clip0.mp4")].iloc[0].to_dict()
    candidate = ClipCandidate.model_validate({**row, "tags": list(row["tags"])})
    path = resources(bucket, tmp_path)["ytdlp"].fetch(candidate, tmp_path / "again")
    assert path.stat().st_size > 0 and site.count("clip0.mp4") == before


def test_offline_youtube_search_fails_fast_naming_the_library(bucket, tmp_path, monkeypatch):
    real = socket.getaddrinfo

    def offline(host: Any, *args: Any, **kwargs: Any) -> Any:
        if str(host) in ("127.0.0.1", "localhost", "::1"):
            return real(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    spec = CatalogResource().add_project(
        "Offline", keywords=["football"], settings=fast_settings(search_source="youtube")
    )
    result = materialize_project(spec.key, resources(bucket, tmp_path), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    text = failure.step_failure_data.user_failure_data.description
    assert "ytdlp" in text and "--search-source library" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--search-source", "tiktok"], "TikTok has no keyword search"),
        (["--url", "www.example.com/v"], "not a URL"),
    ],
)
def test_add_refuses_url_mistakes(args, message):
    result = CliRunner().invoke(main, ["add", "Web", *args])
    assert result.exit_code == 2 and message in result.output


def test_add_with_urls_stores_them():
    result = CliRunner().invoke(
        main,
        [
            "add",
            "Web",
            "--url",
            "https://example.com/a",
            "--url",
            "https://example.com/b",
            "--json",
        ],
    )
    assert result.exit_code == 0
    assert json.loads(result.output)["settings"]["urls"] == [
        "https://example.com/a",
        "https://example.com/b",
    ]
