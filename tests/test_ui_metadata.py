"""What the Dagster UI shows: every asset described, grouped, kinded and owned; every check
described; and, for a real project materialised end to end, the metadata each asset records
in the event log — tables, Markdown, links, numbers with their units, small inline images."""

from __future__ import annotations

import base64
import io
import re
from typing import Any

import dagster as dg
import pytest
from PIL import Image

from shorts_pipeline.assets import production_assets
from shorts_pipeline.assets.publication import publication
from shorts_pipeline.definitions import defs
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.channel import LocalChannelPublisher
from shorts_pipeline.resources.youtube import YouTubePublisher
from tests.helpers import fast_settings, project_resources

# An inline image lives in the event log with every materialisation: a few KB at most.
INLINE_IMAGE_MAX_CHARS = 12_000
DATA_URI = re.compile(r"!\[[^\]]*\]\(data:image/jpeg;base64,([A-Za-z0-9+/=]+)\)")


def test_every_asset_and_check_is_described_grouped_kinded_and_owned():
    specs = list(defs.resolve_all_asset_specs())
    assert {s.key.to_user_string() for s in specs} >= {
        "search_results",
        "selections",
        "script",
        "narration",
        "slides",
        "segments",
        "video",
        "upload",
        "publication",
    }
    for spec in specs:
        name = spec.key.to_user_string()
        assert spec.description and len(spec.description) > 80, name
        assert spec.group_name and spec.group_name != "default", name
        assert spec.kinds, name
        assert spec.owners == ["team:shorts"], name
    checks = [c for a in defs.assets or [] for c in getattr(a, "check_specs", [])]
    assert len(checks) == 18
    for check in checks:
        assert check.description and len(check.description) > 30, check.name


@pytest.mark.slow
def test_each_asset_records_the_previews_a_person_wants(clip_library, shorts_home, monkeypatch):
    monkeypatch.setenv("SHORTS_PREVIEW_URL", "http://preview.example:8123/")
    catalog = CatalogResource()
    spec = catalog.add_project(
        "Top football skills", keywords=["football"], settings=fast_settings(narration=True)
    )
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("project", [spec.key])
    result = dg.materialize(
        [*production_assets, publication],
        partition_key=spec.key,
        instance=instance,
        resources={
            **project_resources(clip_library),
            "local_channel": LocalChannelPublisher(),
            "youtube": YouTubePublisher(),
        },
    )
    assert result.success
    meta = {asset: latest_metadata(instance, asset) for asset in ASSETS}

    search = meta["search_results"]
    assert search["count"] == dg.MetadataValue.int(4)
    table = search["candidates"]
    assert isinstance(table, dg.TableMetadataValue)
    assert columns(table) >= {"title", "source", "views", "score", "url", "thumbnail"}
    assert len(table.records) == 4
    assert {r.data["source"] for r in table.records} == {"library"}
    assert all(isinstance(r.data["score"], float) for r in table.records)
    assert all(r.data["url"].startswith("file://") for r in table.records)

    chosen = meta["selections"]["clips"]
    assert isinstance(chosen, dg.TableMetadataValue)
    assert columns(chosen) >= {"rank", "title", "source", "views", "score", "url", "thumbnail"}
    assert [r.data["rank"] for r in chosen.records] == [1, 2, 3]
    scores = [r.data["score"] for r in chosen.records]
    assert scores == sorted(scores, reverse=True)

    script = meta["script"]
    assert isinstance(script["script"], dg.MarkdownMetadataValue)
    assert "Top football skills" in script["script"].value
    assert script["scene_count"].value >= 3

    narration = meta["narration"]
    assert narration["voice"].value  # the engine's voice name
    assert isinstance(narration["speech_s"], dg.FloatMetadataValue)
    assert narration["speech_s"].value > 1
    assert isinstance(narration["track"], dg.UrlMetadataValue)

    slides = meta["slides"]
    sheet = inline_jpeg(slides["contact_sheet"])
    assert sheet.width >= 100
    assert isinstance(slides["contact_sheet_url"], dg.UrlMetadataValue)

    video = meta["video"]
    thumb = inline_jpeg(video["thumbnail"])
    assert thumb.height > thumb.width  # the 9:16 frame, small
    assert isinstance(video["duration_s"], dg.FloatMetadataValue)
    assert 3 < video["duration_s"].value < 60
    assert isinstance(video["size_mb"], dg.FloatMetadataValue)
    assert isinstance(video["loudness_lufs"], dg.FloatMetadataValue)
    assert video["loudness_lufs"].value == pytest.approx(-14, abs=1)
    assert isinstance(video["true_peak_dbtp"], dg.FloatMetadataValue)
    assert video["reused"] == dg.MetadataValue.bool(False)
    assert video["preview"] == dg.MetadataValue.url(
        f"http://preview.example:8123/projects/{spec.key}"
    )
    assert video["video_url"].value.startswith("file://")
    assert video["video_url"].value.endswith(f"/projects/{spec.key}/video.mp4")
    assert video["video_file"] == dg.MetadataValue.path(
        str(shorts_home / "media" / "projects" / spec.key / "video.mp4")
    )
    assert video["subtitles"].value.endswith("subtitles.srt")

    upload = meta["upload"]
    assert isinstance(upload["url"], dg.UrlMetadataValue)
    assert upload["url"].value.endswith(".mp4")
    assert upload["thumbnail_url"].value.endswith(".jpg")

    published = meta["publication"]
    assert isinstance(published["url"], dg.UrlMetadataValue)
    assert published["platform"].value == "local"

    assert "no AI-generated segments" in meta["segments"]["skipped"].value  # and says why

    described = {c.check_name for c in result.get_asset_check_evaluations()}
    assert len(described) == 18


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


def latest_metadata(instance: dg.DagsterInstance, asset: str) -> dict[str, Any]:
    """The metadata of the asset's latest materialisation, as the UI reads it: from the
    instance's event log."""
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset)), limit=1
    ).records
    return dict(record.asset_materialization.metadata)


def columns(table: dg.TableMetadataValue) -> set[str]:
    assert table.schema is not None
    return {c.name for c in table.schema.columns}


def inline_jpeg(value: Any) -> Image.Image:
    """The image inside a Markdown metadata value: a base64 JPEG data URI, and small."""
    assert isinstance(value, dg.MarkdownMetadataValue)
    text = value.value
    assert len(text) < INLINE_IMAGE_MAX_CHARS, len(text)
    match = DATA_URI.fullmatch(text.strip())
    assert match, text[:80]
    image = Image.open(io.BytesIO(base64.b64decode(match.group(1))))
    assert image.format == "JPEG"
    image.load()
    return image
